//! The native ceiling of ferry's benchmarks: the Rust core driven directly, between real
//! processes, through the same engine calls the C ABI (`ffi.rs`) makes for Deno, so that the cost
//! of the Deno layer is what separates the two.
//!
//!   ferry_bench <ack-sync|ack-async|throughput|throughput-batch|throughput-2x2> <size> <count>
//!
//! prints one JSON line shaped like bench/types.ts `Result`. ack-async is ack-sync here (native
//! code has only the blocking calls). The process that runs the command creates a uniquely named
//! channel (capacity 64, max message max(size, 64)) and re-executes itself for its peers; a peer
//! prints "ready" on stdout once it joined the channel, a sender peer starts on "go" from stdin.
//!
//! - ack-sync: this process sends in ack mode (1 slot) and waits for the ack, one message at a
//!   time, timing each round trip; one receiver peer.
//! - throughput: this process sends in async mode (16 slots, waiting for room like
//!   `ferry_send_wait`); one receiver peer times its first to its last message.
//! - throughput-batch: as throughput, through the batch calls the binding's `sendManySync` and
//!   `recvManySync` make: BATCH messages per `send_batch` (waiting for room between calls), up to
//!   RECV_BATCH per `recv_batch`, copied end to end into one buffer.
//! - throughput-2x2: two sender peers and two receiver peers on one channel (work queue). Each
//!   sender ends with one empty message; a receiver stops at the first empty message it gets,
//!   so each receiver gets exactly one and nothing is left behind.
//!
//! Receivers copy every payload into one reusable buffer and release it, as `ferry_recv_wait`
//! does with `RECV_AUTO_RELEASE`.

use std::hint::black_box;
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitCode, Stdio};

use ferry_core::channel::{Handle, OpenOptions, Side};
use ferry_core::status::{EMPTY, FULL_CAPACITY, FULL_MEMORY, FULL_SLOTS, OK, PENDING, TIMEOUT};
use ferry_core::sys;

const CAPACITY: u32 = 64;
/// The binding's defaults: ack mode 1 slot, async mode 16, expiry 60 s.
const ACK_SLOTS: u32 = 1;
const ASYNC_SLOTS: u32 = 16;
const EXPIRY_MS: u32 = 60_000;
/// Every wait is bounded, so a lost peer ends the run with an error instead of hanging it.
const WAIT_MS: u32 = 30_000;
/// Messages per batch send: what bench/ferry_peer.ts passes to `sendManySync`.
const BATCH: usize = 16;
/// Most messages per batch receive: what bench/ferry_peer.ts passes to `recvManySync`.
const RECV_BATCH: u32 = 256;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    AckSync,
    Throughput,
    ThroughputBatch,
    Throughput2x2,
}

impl Kind {
    fn parse(s: &str) -> Result<Kind, String> {
        match s {
            "ack-sync" | "ack-async" => Ok(Kind::AckSync),
            "throughput" => Ok(Kind::Throughput),
            "throughput-batch" => Ok(Kind::ThroughputBatch),
            "throughput-2x2" => Ok(Kind::Throughput2x2),
            _ => Err(format!("unknown workload kind {s:?}")),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::AckSync => "ack-sync",
            Kind::Throughput => "throughput",
            Kind::ThroughputBatch => "throughput-batch",
            Kind::Throughput2x2 => "throughput-2x2",
        }
    }
}

fn usage() -> String {
    "usage: ferry_bench <ack-sync|ack-async|throughput|throughput-batch|throughput-2x2> <size> <count>"
        .to_string()
}

fn number(s: Option<&String>, what: &str) -> Result<u32, String> {
    s.and_then(|v| v.parse().ok()).ok_or_else(|| format!("{what}: expected a number\n{}", usage()))
}

/// The payload of bench/types.ts `rawPayload`.
fn raw_payload(size: usize) -> Vec<u8> {
    (0..size).map(|i| ((i * 31 + 7) & 0xff) as u8).collect()
}

fn open(name: &str, size: u32, slot_limit: u32) -> Result<Handle, String> {
    let opts = OpenOptions {
        name,
        capacity: CAPACITY,
        max_message: size.max(64),
        memory: ferry_core::layout::MEMORY_DEFAULT,
        mode: 0o600,
        slot_limit,
        observer: false,
    };
    Handle::open(&opts).map_err(|e| format!("open {name}: status {} ({})", e.code, e.detail))
}

/// `ferry_send_wait`: send, waiting for room (capacity or this sender's slots) up to WAIT_MS.
fn send_wait(h: &Handle, payload: &[u8], ack: bool) -> Result<(u32, u32), String> {
    let mut sent = (0, 0);
    let r = h.wait_for(Side::Send, WAIT_MS, || match h.send(payload, ack, EXPIRY_MS) {
        Err(FULL_CAPACITY | FULL_SLOTS | FULL_MEMORY) => None,
        Err(code) => Some(code),
        Ok((slot, generation, _seq)) => {
            sent = (slot, generation);
            Some(OK)
        }
    });
    match r {
        OK => Ok(sent),
        code => Err(format!("send: status {code}")),
    }
}

/// `ferry_ack_wait`: wait until the receiver released the ack-mode message.
fn ack_wait(h: &Handle, slot: u32, generation: u32) -> Result<(), String> {
    match h.wait_for(Side::Send, WAIT_MS, || match h.ack_status(slot, generation) {
        PENDING => None,
        r => Some(r),
    }) {
        OK => Ok(()),
        code => Err(format!("ack wait: status {code}")),
    }
}

/// `ferry_recv_wait` with auto-release: claim, copy into `dst`, release. Returns the length.
fn recv_wait(h: &Handle, dst: &mut [u8]) -> Result<usize, String> {
    let mut len = 0;
    let r = h.wait_for(Side::Recv, WAIT_MS, || {
        let m = match h.claim() {
            Ok(m) => m,
            Err(EMPTY) => return None,
            Err(code) => return Some(code),
        };
        match h.read(m.slot, m.generation, dst) {
            Ok(n) => {
                len = n as usize;
                Some(h.release(m.slot, m.generation))
            }
            Err(code) => Some(code),
        }
    });
    match r {
        OK => Ok(len),
        TIMEOUT => Err("receive: timed out".to_string()),
        code => Err(format!("receive: status {code}")),
    }
}

/// `sendManySync`: sends the messages laid end to end in `payloads`, waiting for room between
/// batch calls as the binding does (`ferry_send_room_wait`).
fn send_batch_wait(h: &Handle, payloads: &[u8], lens: &[u32]) -> Result<(), String> {
    let (mut at, mut from) = (0usize, 0usize);
    while from < lens.len() {
        let (sent, why) = h.send_batch(&payloads[at..], &lens[from..], EXPIRY_MS, false);
        at += lens[from..from + sent as usize].iter().map(|&l| l as usize).sum::<usize>();
        from += sent as usize;
        match why {
            OK => {}
            FULL_CAPACITY | FULL_SLOTS | FULL_MEMORY => {
                let r = h.wait_for(Side::Send, WAIT_MS, || h.has_room().then_some(OK));
                if r != OK {
                    return Err(format!("send batch: waiting for room: status {r}"));
                }
            }
            code => return Err(format!("send batch: status {code}")),
        }
    }
    Ok(())
}

/// `recvManySync` with auto-release: up to RECV_BATCH messages copied end to end into `dst`,
/// waiting for the first. Returns each message's (start, length) in `got`.
fn recv_batch_wait(h: &Handle, dst: &mut [u8], got: &mut Vec<(usize, usize)>) -> Result<(), String> {
    got.clear();
    let r = h.wait_for(Side::Recv, WAIT_MS, || {
        match h
            .recv_batch(dst, RECV_BATCH, true, |m, at| got.push((at.unwrap_or(0) as usize, m.len as usize)))
        {
            Ok(_) => Some(OK),
            Err(EMPTY) => None,
            Err(code) => Some(code),
        }
    });
    match r {
        OK => Ok(()),
        TIMEOUT => Err("receive batch: timed out".to_string()),
        code => Err(format!("receive batch: status {code}")),
    }
}

// ------------------------------------------------------------------------------------ peers

/// A peer process of this run. Killed (if still running) when dropped.
struct Peer {
    child: Child,
    stdin: Option<ChildStdin>,
    out: BufReader<ChildStdout>,
}

impl Peer {
    fn spawn(args: &[String]) -> Result<Peer, String> {
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut child = Command::new(exe)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn peer: {e}"))?;
        let out = BufReader::new(child.stdout.take().ok_or("peer stdout")?);
        let stdin = child.stdin.take();
        Ok(Peer { child, stdin, out })
    }

    fn line(&mut self) -> Result<String, String> {
        let mut s = String::new();
        match self.out.read_line(&mut s) {
            Ok(0) => Err("a peer exited early".to_string()),
            Ok(_) => Ok(s.trim_end().to_string()),
            Err(e) => Err(format!("peer output: {e}")),
        }
    }

    fn expect(&mut self, what: &str) -> Result<(), String> {
        let got = self.line()?;
        if got == what {
            Ok(())
        } else {
            Err(format!("peer said {got:?}, not {what:?}"))
        }
    }

    fn say(&mut self, text: &str) -> Result<(), String> {
        let w = self.stdin.as_mut().ok_or("peer stdin closed")?;
        writeln!(w, "{text}").and_then(|_| w.flush()).map_err(|e| format!("peer stdin: {e}"))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        drop(self.stdin.take());
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Unlinks the channel when the run ends, whichever way it ends (peers are dropped first).
struct Unlink(String);

impl Drop for Unlink {
    fn drop(&mut self) {
        let _ = sys::shm_remove(&self.0);
    }
}

/// What a receiver peer prints: `{"received":N,"bytes":B,"first_ns":F,"last_ns":L,"sink":S}`.
struct Report {
    received: u64,
    bytes: u64,
    first_ns: u64,
    last_ns: u64,
}

fn field(line: &str, key: &str) -> Result<u64, String> {
    let tag = format!("\"{key}\":");
    let at = line.find(&tag).ok_or_else(|| format!("no {key} in {line:?}"))? + tag.len();
    let digits: String = line[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().map_err(|_| format!("bad {key} in {line:?}"))
}

fn parse_report(line: &str) -> Result<Report, String> {
    Ok(Report {
        received: field(line, "received")?,
        bytes: field(line, "bytes")?,
        first_ns: field(line, "first_ns")?,
        last_ns: field(line, "last_ns")?,
    })
}

// ------------------------------------------------------------------------------------ roles

/// Receiver peer: `count` messages, or (count 0) until the first empty message.
fn role_recv(name: &str, size: u32, count: u64) -> Result<(), String> {
    let h = open(name, size, ASYNC_SLOTS)?;
    println!("ready");
    let mut buf = vec![0u8; size.max(64) as usize];
    let (mut received, mut bytes, mut sink) = (0u64, 0u64, 0u64);
    let (mut first_ns, mut last_ns) = (0, 0);
    loop {
        if count > 0 && received == count {
            break;
        }
        let len = recv_wait(&h, &mut buf)?;
        if len == 0 {
            break;
        }
        // The application's handling of the message: look at the copy.
        let msg = black_box(&buf[..len]);
        sink = sink.wrapping_add(u64::from(msg[len - 1]));
        last_ns = sys::monotonic_ns();
        if received == 0 {
            first_ns = last_ns;
        }
        received += 1;
        bytes += len as u64;
    }
    h.close();
    println!(
        "{{\"received\":{received},\"bytes\":{bytes},\"first_ns\":{first_ns},\"last_ns\":{last_ns},\"sink\":{sink}}}"
    );
    Ok(())
}

/// Receiver peer of throughput-batch: until the first empty message, by batches.
fn role_recv_batch(name: &str, size: u32) -> Result<(), String> {
    let h = open(name, size, ASYNC_SLOTS)?;
    println!("ready");
    let mut buf = vec![0u8; (size.max(64) * RECV_BATCH) as usize];
    let mut got = Vec::with_capacity(RECV_BATCH as usize);
    let (mut received, mut bytes, mut sink) = (0u64, 0u64, 0u64);
    let (mut first_ns, mut last_ns) = (0, 0);
    'run: loop {
        recv_batch_wait(&h, &mut buf, &mut got)?;
        for &(at, len) in &got {
            if len == 0 {
                break 'run;
            }
            let msg = black_box(&buf[at..at + len]);
            sink = sink.wrapping_add(u64::from(msg[len - 1]));
            received += 1;
            bytes += len as u64;
        }
        last_ns = sys::monotonic_ns();
        if first_ns == 0 {
            first_ns = last_ns;
        }
    }
    h.close();
    println!(
        "{{\"received\":{received},\"bytes\":{bytes},\"first_ns\":{first_ns},\"last_ns\":{last_ns},\"sink\":{sink}}}"
    );
    Ok(())
}

/// Sender peer of throughput-2x2: waits for "go", sends `count` async messages and one empty one.
fn role_send(name: &str, size: u32, count: u64) -> Result<(), String> {
    let h = open(name, size, ASYNC_SLOTS)?;
    let payload = raw_payload(size as usize);
    println!("ready");
    let mut go = String::new();
    std::io::stdin().read_line(&mut go).map_err(|e| format!("stdin: {e}"))?;
    if go.trim_end() != "go" {
        return Err(format!("sender peer: expected go, got {go:?}"));
    }
    for _ in 0..count {
        send_wait(&h, &payload, false)?;
    }
    send_wait(&h, &[], false)?;
    // Queued messages outlive the handle; closing leaves them for the receivers.
    h.close();
    println!("done");
    Ok(())
}

fn peer_args(role: &str, name: &str, size: u32, count: u64) -> Vec<String> {
    vec!["--peer".into(), role.into(), name.into(), size.to_string(), count.to_string()]
}

fn percentile(sorted: &[u64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p) as usize).min(sorted.len() - 1);
    sorted[i] as f64 / 1000.0
}

fn run(kind: Kind, size: u32, count: u64) -> Result<String, String> {
    if count == 0 || size == 0 {
        // An empty message is the end marker of throughput-2x2.
        return Err("size and count must be at least 1".to_string());
    }
    let name = format!("/ferry_bench.{}.{}.{}", sys::pid(), kind.name(), sys::monotonic_ns() % 1_000_000_007);
    let payload = raw_payload(size as usize);
    // Declared first, dropped last: the peers are gone before the channel is unlinked.
    let _unlink = Unlink(name.clone());
    let mut peers: Vec<Peer> = Vec::new();
    match kind {
        Kind::AckSync => {
            let h = open(&name, size, ACK_SLOTS)?;
            peers.push(Peer::spawn(&peer_args("recv", &name, size, count))?);
            peers[0].expect("ready")?;
            let mut samples = Vec::with_capacity(count as usize);
            for _ in 0..count {
                let t0 = sys::monotonic_ns();
                let (slot, generation) = send_wait(&h, &payload, true)?;
                ack_wait(&h, slot, generation)?;
                samples.push(sys::monotonic_ns() - t0);
            }
            let r = parse_report(&peers[0].line()?)?;
            h.close();
            if r.received != count {
                return Err(format!("{} of {count} received", r.received));
            }
            let total: u64 = samples.iter().sum();
            samples.sort_unstable();
            let msgs = count as f64 / (total as f64 / 1e9);
            Ok(format!(
                "{{\"msgsPerSec\":{msgs:.1},\"mbPerSec\":{:.3},\"p50us\":{:.3},\"p99us\":{:.3},\"p999us\":{:.3},\"meanUs\":{:.3}}}",
                msgs * f64::from(size) / 1e6,
                percentile(&samples, 0.5),
                percentile(&samples, 0.99),
                percentile(&samples, 0.999),
                total as f64 / count as f64 / 1000.0,
            ))
        }
        Kind::Throughput => {
            let h = open(&name, size, ASYNC_SLOTS)?;
            peers.push(Peer::spawn(&peer_args("recv", &name, size, count))?);
            peers[0].expect("ready")?;
            for _ in 0..count {
                send_wait(&h, &payload, false)?;
            }
            let r = parse_report(&peers[0].line()?)?;
            h.close();
            if r.received != count {
                return Err(format!("{} of {count} received", r.received));
            }
            Ok(throughput_json(&[r]))
        }
        Kind::ThroughputBatch => {
            let h = open(&name, size, ASYNC_SLOTS)?;
            peers.push(Peer::spawn(&peer_args("recv-batch", &name, size, 0))?);
            peers[0].expect("ready")?;
            let payloads: Vec<u8> = (0..BATCH).flat_map(|_| payload.iter().copied()).collect();
            let lens = [size; BATCH];
            let mut left = count;
            while left > 0 {
                let n = left.min(BATCH as u64) as usize;
                send_batch_wait(&h, &payloads[..n * size as usize], &lens[..n])?;
                left -= n as u64;
            }
            send_batch_wait(&h, &[], &[0])?;
            let r = parse_report(&peers[0].line()?)?;
            h.close();
            if r.received != count {
                return Err(format!("{} of {count} received", r.received));
            }
            Ok(throughput_json(&[r]))
        }
        Kind::Throughput2x2 => {
            // Create the channel, then leave it: the four peers take participant indexes 0..3.
            open(&name, size, ASYNC_SLOTS)?.close();
            for _ in 0..2 {
                peers.push(Peer::spawn(&peer_args("recv", &name, size, 0))?);
            }
            for p in &mut peers {
                p.expect("ready")?;
            }
            for _ in 0..2 {
                peers.push(Peer::spawn(&peer_args("send", &name, size, count))?);
            }
            for p in &mut peers[2..] {
                p.expect("ready")?;
            }
            for p in &mut peers[2..] {
                p.say("go")?;
            }
            for p in &mut peers[2..] {
                p.expect("done")?;
            }
            let reports = [parse_report(&peers[0].line()?)?, parse_report(&peers[1].line()?)?];
            let received: u64 = reports.iter().map(|r| r.received).sum();
            if received != 2 * count {
                return Err(format!("{received} of {} received", 2 * count));
            }
            Ok(throughput_json(&reports))
        }
    }
}

/// Messages and bytes over the span from the earliest first message to the latest last one.
fn throughput_json(reports: &[Report]) -> String {
    let first = reports.iter().filter(|r| r.received > 0).map(|r| r.first_ns).min().unwrap_or(0);
    let last = reports.iter().map(|r| r.last_ns).max().unwrap_or(0);
    let seconds = (last.saturating_sub(first)).max(1) as f64 / 1e9;
    let received: u64 = reports.iter().map(|r| r.received).sum();
    let bytes: u64 = reports.iter().map(|r| r.bytes).sum();
    format!(
        "{{\"msgsPerSec\":{:.1},\"mbPerSec\":{:.3}}}",
        received as f64 / seconds,
        bytes as f64 / seconds / 1e6
    )
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let result = if args.get(1).map(String::as_str) == Some("--peer") {
        // --peer <recv|send> <name> <size> <count>
        match (args.get(2).map(String::as_str), args.get(3), number(args.get(4), "size")) {
            (Some(role), Some(name), Ok(size)) => {
                let count = args.get(5).and_then(|c| c.parse().ok()).unwrap_or(0);
                match role {
                    "recv" => role_recv(name, size, count),
                    "send" => role_send(name, size, count),
                    "recv-batch" => role_recv_batch(name, size),
                    _ => Err(format!("unknown peer role {role:?}")),
                }
            }
            _ => Err("bad peer arguments".to_string()),
        }
    } else {
        let parsed = (|| {
            let kind = Kind::parse(args.get(1).ok_or_else(usage)?)?;
            Ok::<_, String>((kind, number(args.get(2), "size")?, number(args.get(3), "count")?))
        })();
        parsed
            .and_then(|(kind, size, count)| run(kind, size, u64::from(count)))
            .map(|line| println!("{line}"))
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ferry_bench: {e}");
            ExitCode::FAILURE
        }
    }
}
