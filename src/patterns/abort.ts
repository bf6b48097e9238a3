// AbortSignal plumbing shared by the patterns: a wait that gives up when its signal aborts.

/** The reason a signal aborted with, as the error to throw (a DOMException AbortError by default). */
export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("the operation was aborted", "AbortError");
}

/**
 * `promise`, or a rejection with the signal's reason once `signal` aborts, whichever comes first.
 * The promise is not cancelled (nothing in a promise can be): its later outcome is ignored.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  if (signal.aborted) {
    promise.catch(() => {});
    return Promise.reject(abortReason(signal));
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      promise.catch(() => {});
      reject(abortReason(signal));
    };
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}
