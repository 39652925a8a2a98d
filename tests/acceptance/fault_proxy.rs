//! A fault-injecting HTTP proxy in front of the test registry, on a loopback port: it
//! answers chosen requests with an error status, cuts their answer off half way, or
//! stalls, and forwards the rest (with their bodies, for pushes). One request per connection (it asks the registry to
//! close), so every request the client makes is seen and counted, and so is the largest
//! number of blob requests in flight at once. Stopped when dropped.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Debug)]
pub enum Fault {
    /// Answer with this status (and `Retry-After` seconds), no body.
    Status(u16, Option<u64>),
    /// Forward, but send back only the head and half the body, then close.
    CutOff,
    /// Say nothing for this long, then close.
    Stall(Duration),
    /// Forward the head and half the body, wait this long, then send the rest.
    StallBody(Duration),
    /// Wait this long, then forward.
    Delay(Duration),
}

/// Applies `fault` to the next `times` requests whose request line contains `matching`.
#[derive(Clone, Debug)]
pub struct Rule {
    pub matching: String,
    pub times: usize,
    pub fault: Fault,
}

impl Rule {
    pub fn new(matching: &str, times: usize, fault: Fault) -> Rule {
        Rule { matching: matching.to_string(), times, fault }
    }
}

pub struct FaultProxy {
    pub address: String,
    /// Every request line seen, with what was done (`pass` or the fault).
    log: Arc<Mutex<Vec<(String, String)>>>,
    rules: Arc<Mutex<Vec<Rule>>>,
    stop: Arc<AtomicBool>,
    /// Blob requests being answered now, and the most there were at once.
    blobs: Arc<(AtomicUsize, AtomicUsize)>,
}

impl FaultProxy {
    pub fn start(upstream: &str, rules: Vec<Rule>) -> FaultProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let log = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let rules = Arc::new(Mutex::new(rules));
        let blobs = Arc::new((AtomicUsize::new(0), AtomicUsize::new(0)));
        let (thread_log, thread_stop, thread_rules, thread_blobs, upstream) =
            (log.clone(), stop.clone(), rules.clone(), blobs.clone(), upstream.to_string());
        std::thread::spawn(move || {
            while !thread_stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (rules, log, blobs, upstream) =
                            (thread_rules.clone(), thread_log.clone(), thread_blobs.clone(), upstream.clone());
                        std::thread::spawn(move || {
                            let _ = handle(client, &upstream, &rules, &log, &blobs);
                        });
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        FaultProxy { address, log, rules, stop, blobs }
    }

    /// The largest number of blob requests that were in flight at once.
    pub fn most_blob_requests_at_once(&self) -> usize {
        self.blobs.1.load(Ordering::SeqCst)
    }

    /// Adds a rule, after the ones given at the start.
    pub fn add(&self, rule: Rule) {
        self.rules.lock().unwrap().push(rule);
    }

    /// The request lines seen that contain `matching`, with what was done to each.
    pub fn seen(&self, matching: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter(|(line, _)| line.contains(matching))
            .map(|(_, action)| action.clone())
            .collect()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Reads up to the end of the request head.
fn read_head(stream: &mut TcpStream) -> std::io::Result<Vec<u8>> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 || head.len() > 65536 {
            return Err(std::io::Error::other("incomplete request head"));
        }
        head.push(byte[0]);
    }
    Ok(head)
}

fn handle(
    mut client: TcpStream,
    upstream: &str,
    rules: &Mutex<Vec<Rule>>,
    log: &Mutex<Vec<(String, String)>>,
    blobs: &(AtomicUsize, AtomicUsize),
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let head = read_head(&mut client)?;
    let text = String::from_utf8_lossy(&head).into_owned();
    let request_line = text.lines().next().unwrap_or("").to_string();
    /// Counts a blob request in flight until dropped.
    struct InFlight<'a>(&'a AtomicUsize);
    impl Drop for InFlight<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, Ordering::SeqCst);
        }
    }
    let _in_flight = request_line.contains("/blobs/").then(|| {
        let now = blobs.0.fetch_add(1, Ordering::SeqCst) + 1;
        blobs.1.fetch_max(now, Ordering::SeqCst);
        InFlight(&blobs.0)
    });
    let fault = {
        let mut rules = rules.lock().unwrap();
        rules.iter_mut().find(|r| r.times > 0 && request_line.contains(&r.matching)).map(|rule| {
            rule.times -= 1;
            rule.fault.clone()
        })
    };
    log.lock().unwrap().push((request_line, fault.as_ref().map_or("pass".to_string(), |f| format!("{f:?}"))));
    match fault {
        Some(Fault::Status(code, retry_after)) => {
            let retry = retry_after.map_or(String::new(), |s| format!("Retry-After: {s}\r\n"));
            write!(client, "HTTP/1.1 {code} Injected\r\nContent-Length: 0\r\nConnection: close\r\n{retry}\r\n")?;
            return Ok(());
        }
        Some(Fault::Stall(duration)) => {
            std::thread::sleep(duration);
            return Ok(());
        }
        Some(Fault::Delay(duration)) => std::thread::sleep(duration),
        _ => {}
    }
    // Forward with `Connection: close`, so the registry's answer ends with the connection.
    let mut forwarded: String = text
        .trim_end_matches("\r\n")
        .split("\r\n")
        .filter(|line| !line.to_ascii_lowercase().starts_with("connection:"))
        .map(|line| format!("{line}\r\n"))
        .collect();
    forwarded.push_str("Connection: close\r\n\r\n");
    let length = text
        .split("\r\n")
        .find_map(|line| line.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("content-length")))
        .and_then(|(_, value)| value.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mut registry = TcpStream::connect(upstream)?;
    registry.write_all(forwarded.as_bytes())?;
    std::io::copy(&mut (&mut client).take(length), &mut registry)?;
    let mut answer = Vec::new();
    registry.read_to_end(&mut answer)?;
    let body_start = answer.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |p| p + 4);
    let half = body_start + (answer.len() - body_start) / 2;
    match fault {
        Some(Fault::CutOff) => {
            client.write_all(&answer[..half])?;
            return Ok(());
        }
        Some(Fault::StallBody(duration)) => {
            client.write_all(&answer[..half])?;
            client.flush()?;
            std::thread::sleep(duration);
            return client.write_all(&answer[half..]);
        }
        _ => {}
    }
    client.write_all(&answer)
}
