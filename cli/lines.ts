// Lines of a byte stream as they arrive, with the Web Streams Deno has built in: TextDecoderStream
// and a splitter in the shape of @std/streams' TextLineStream (JSR cannot be reached from where
// ferry is built). The CLI reads stdin with it; the tests read their children's output with it.

/** Splits text into lines: "\n" or "\r\n" ends one, and a last line without either is one too. */
export class LineSplitStream extends TransformStream<string, string> {
  constructor() {
    let pending = "";
    super({
      transform(chunk, controller) {
        pending += chunk;
        let start = 0;
        for (let end; (end = pending.indexOf("\n", start)) >= 0; start = end + 1) {
          controller.enqueue(withoutCr(pending.slice(start, end)));
        }
        pending = pending.slice(start);
      },
      flush(controller) {
        if (pending !== "") controller.enqueue(withoutCr(pending));
      },
    });
  }
}

function withoutCr(line: string): string {
  return line.endsWith("\r") ? line.slice(0, -1) : line;
}

/** The UTF-8 lines of `stream`, as they arrive. */
export function textLines(stream: ReadableStream<Uint8Array>): ReadableStream<string> {
  return stream.pipeThrough(new TextDecoderStream()).pipeThrough(new LineSplitStream());
}
