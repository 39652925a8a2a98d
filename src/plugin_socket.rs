//! The connection Terraform makes to the provider, without Nagle's algorithm.
//!
//! Terraform talks to a provider over one loopback TCP connection (gRPC over TLS), which
//! the plugin framework (`tf-provider`) accepts with Nagle's algorithm on. A response goes
//! out as several small writes (HTTP/2 HEADERS, DATA and trailers, each a TLS record); with
//! Nagle on, a write waits until the one before it is acknowledged, and Terraform's side
//! delays its acknowledgements by up to 40 ms. Most calls then took 40 ms longer than their
//! work, and an apply makes dozens of them on its critical path: about 0.45 s of a 3 s
//! apply of a kernel and 14 packages.
//!
//! The framework offers no hook on its listener, but Linux gives every socket `accept`
//! returns the listener's `TCP_NODELAY`, and Terraform connects only once it has read the
//! handshake line the framework prints on stdout. So [`hold_handshake`] makes stdout a pipe
//! read by a thread here: on the first line, every TCP socket the process listens on gets
//! `TCP_NODELAY` ([`nodelay_listeners`]), and only then does the line reach the real
//! stdout, followed by anything written after it. Every connection is accepted without
//! Nagle's algorithm, with no race. Where something of this fails (an old kernel without
//! `pidfd_getfd`, a sandbox that forbids it), the provider works as before, only slower,
//! and says so in its debug log.
//!
//! The forwarding also tells when Terraform died before it read the handshake (killed
//! just after starting the provider, before the parent-death watch could see it go): the
//! real stdout then has no reader, and the provider stops
//! ([`crate::tempfiles::stop_orphaned`]) instead of waiting for a connection forever.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;

use anyhow::{Context, Result};
use rustix::net::{sockopt, AddressFamily};
use rustix::process::{getpid, pidfd_getfd, pidfd_open, PidfdFlags, PidfdGetfdFlags};

/// Makes stdout a pipe that a thread forwards to the real stdout, setting `TCP_NODELAY`
/// on the process's listening sockets before the first line goes through. Call it before
/// anything is written to stdout and before the provider listens.
pub fn hold_handshake() -> Result<()> {
    let real_stdout = rustix::io::dup(std::io::stdout()).context("duplicating stdout")?;
    let (reader, writer) = rustix::pipe::pipe().context("creating the handshake pipe")?;
    rustix::stdio::dup2_stdout(&writer).context("making stdout the handshake pipe")?;
    drop(writer);
    std::thread::Builder::new()
        .name("plugin-handshake".into())
        .spawn(move || {
            let first_line = || match nodelay_listeners() {
                Ok(count) => crate::log::debug("plugin socket: TCP_NODELAY set", &[("listeners", count.to_string())]),
                Err(e) => crate::log::debug("plugin socket: TCP_NODELAY not set", &[("error", format!("{e:#}"))]),
            };
            match forward(std::fs::File::from(reader), std::fs::File::from(real_stdout), first_line) {
                Ok(()) => {}
                // Nobody reads the provider's stdout: Terraform, which started it, is gone
                // (killed before it read the handshake). Nothing would ever connect.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => crate::tempfiles::stop_orphaned(
                    "Terraform is not reading this provider's output (it exited); stopping now",
                    &[("error", e.to_string())],
                ),
                Err(e) => crate::log::debug("plugin handshake: stdout not forwarded", &[("error", e.to_string())]),
            }
        })
        .context("starting the handshake thread")?;
    Ok(())
}

/// Copies `from` to `to`, calling `first_line` once the first line has been read and
/// before it is written.
fn forward(from: impl Read, mut to: impl Write, first_line: impl FnOnce()) -> std::io::Result<()> {
    let mut from = BufReader::new(from);
    let mut line = Vec::new();
    from.read_until(b'\n', &mut line)?;
    first_line();
    to.write_all(&line)?;
    to.flush()?;
    loop {
        let buffer = from.fill_buf()?;
        if buffer.is_empty() {
            return Ok(());
        }
        to.write_all(buffer)?;
        to.flush()?;
        let read = buffer.len();
        from.consume(read);
    }
}

/// Sets `TCP_NODELAY` on every TCP socket this process listens on; returns how many.
/// Each descriptor is taken through `pidfd_getfd` (a duplicate of this process's own,
/// which keeps the socket alive while it is changed) rather than by its number.
pub fn nodelay_listeners() -> Result<usize> {
    let process = pidfd_open(getpid(), PidfdFlags::empty()).context("pidfd_open of this process")?;
    let mut count = 0;
    for entry in std::fs::read_dir("/proc/self/fd").context("listing /proc/self/fd")? {
        let Ok(entry) = entry else { continue };
        let Ok(number) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        // The descriptors of sockets read as `socket:[inode]`; the others are skipped
        // before being duplicated (one may be gone already: the listing is a snapshot).
        if !std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:")) {
            continue;
        }
        let socket: OwnedFd = match pidfd_getfd(&process, number, PidfdGetfdFlags::empty()) {
            Ok(socket) => socket,
            Err(rustix::io::Errno::BADF) => continue,
            Err(e) => return Err(e).context("pidfd_getfd of a socket of this process"),
        };
        let tcp = matches!(sockopt::socket_domain(&socket), Ok(AddressFamily::INET | AddressFamily::INET6))
            && sockopt::socket_type(&socket).is_ok_and(|kind| kind == rustix::net::SocketType::STREAM);
        if tcp && sockopt::socket_acceptconn(&socket).unwrap_or(false) {
            sockopt::set_tcp_nodelay(&socket, true).context("setting TCP_NODELAY")?;
            count += 1;
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn accepted_connections_have_nodelay_once_their_listener_has() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _other = TcpListener::bind("[::1]:0").ok();
        let before = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted_before, _) = listener.accept().unwrap();
        assert!(!accepted_before.nodelay().unwrap(), "Nagle is on by default");
        drop(before);

        assert!(nodelay_listeners().unwrap() >= 1);
        // An established (not listening) socket is left alone.
        assert!(!accepted_before.nodelay().unwrap());
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert!(accepted.nodelay().unwrap(), "a socket accepted afterwards inherits TCP_NODELAY");
    }

    #[test]
    fn the_first_line_is_held_until_the_callback_ran_and_everything_follows() {
        let input = b"1|6|tcp|127.0.0.1:1234|grpc|cert\nlater output\nno newline at the end".to_vec();
        let written = std::cell::RefCell::new(Vec::new());
        struct Sink<'a>(&'a std::cell::RefCell<Vec<u8>>);
        impl Write for Sink<'_> {
            fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
                self.0.borrow_mut().extend_from_slice(bytes);
                Ok(bytes.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let mut seen_at_callback = None;
        forward(&input[..], Sink(&written), || seen_at_callback = Some(written.borrow().len())).unwrap();
        assert_eq!(seen_at_callback, Some(0), "nothing is written before the callback");
        assert_eq!(*written.borrow(), input);
    }

    #[test]
    fn an_empty_stdout_still_calls_back() {
        let mut called = false;
        forward(&b""[..], Vec::new(), || called = true).unwrap();
        assert!(called);
    }
}
