//! The `terraform-provider-resin` binary: signals, logging, the plugin socket, runtime, then
//! the provider.

use std::process::ExitCode;

/// What go-plugin sets for a plugin it starts; its absence means someone ran the binary by hand.
const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
const MAGIC_COOKIE_VALUE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

fn main() -> ExitCode {
    prepare_process();

    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [command, name] = args.as_slice() {
        if command == "segment-cache-key" {
            return segment_cache_key(name);
        }
    }
    if std::env::var(MAGIC_COOKIE_KEY).as_deref() != Ok(MAGIC_COOKIE_VALUE) {
        eprintln!(
            "terraform-provider-resin is a Terraform provider plugin; Terraform starts it.\n\
             Use it from a Terraform configuration with source = \"resinstack/resin\"\n\
             (see the README: make install, or dev_overrides for development).\n\
             terraform-provider-resin segment-cache-key <name> prints a new key pair for\n\
             the provider's segment_cache block (secret, then public)."
        );
        return ExitCode::from(1);
    }

    resin::log::enable();
    // Before the framework listens and prints its handshake: see the module's doc.
    if let Err(e) = resin::plugin_socket::hold_handshake() {
        resin::log::debug("plugin handshake: stdout not held", &[("error", format!("{e:#}"))]);
    }
    resin::oci::registry::install_crypto_provider();
    // When Terraform is killed, this process is orphaned: stop instead of finishing an
    // apply whose result no state would record.
    resin::tempfiles::watch_parent(std::time::Duration::from_millis(200));

    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(tf_provider::serve("resin", resin::resources::ResinProvider::default())) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            resin::log::write(resin::log::Level::Error, "provider stopped", &[("error", format!("{e:#}"))]);
            ExitCode::from(1)
        }
    }
}

/// `terraform-provider-resin segment-cache-key <name>`: a new key pair for the shared
/// segment cache: the secret key on stdout's first line (for the runner that writes), the
/// public key on the second (for every runner's `trusted_keys`).
fn segment_cache_key(name: &str) -> ExitCode {
    match resin::assemble::SigningKey::generate(name) {
        Ok((secret, public)) => {
            println!("{secret}\n{public}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot make a key: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// The process settings that need `unsafe`, the one place in the crate allowed it:
/// * diagnostics must not carry backtraces, whatever RUST_BACKTRACE says;
/// * Ctrl-C reaches the whole process group; Terraform then asks the provider to stop
///   through the protocol, and in-flight calls must be allowed to finish and be
///   recorded, so SIGINT is ignored (`signal(SIGINT, SIG_IGN)`, without a libc dependency).
#[allow(unsafe_code)]
fn prepare_process() {
    extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGINT: i32 = 2;
    const SIG_IGN: usize = 1;
    // SAFETY: called first in main, when no other thread exists yet.
    unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    // SAFETY: setting a signal disposition to SIG_IGN has no preconditions.
    unsafe { signal(SIGINT, SIG_IGN) };
}
