//! `kubejoin`: parse, run, map failures to exit codes. Everything else lives in the library.

use kubejoin::error::{Classify, Report};
use std::process::ExitCode;

fn main() -> ExitCode {
    // The initramfs' /init (PID 1): PID-1 mode, which never returns.
    // The one seam, made once here and handed down.
    let system = kubejoin::sys::System::real();
    if std::process::id() == 1 {
        kubejoin::init::run(system);
    }
    std::panic::set_hook(Box::new(|info| {
        eprintln!("kubejoin: error: internal error (a bug, please report it): {info}");
        if cfg!(panic = "abort") {
            // The shipped binary (Cargo.toml: panic = "abort"): the exit status of an
            // unwinding panic, not SIGABRT.
            std::process::exit(101);
        }
    }));
    let cmd = match kubejoin::cli::parse(std::env::args_os()) {
        Ok(cmd) => cmd,
        Err(e) => return fail(&e, e.hint(), e.class().exit_code()),
    };
    // `kubejoin init` (`kubejoin init --help` is only help): PID-1 mode on request.
    if matches!(cmd, kubejoin::cli::Command::Init) {
        kubejoin::init::run(system);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("kubejoin: error: starting the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(kubejoin::app::run(cmd, &system)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, e.hint(), e.class().exit_code()),
    }
}

fn fail(e: &(dyn std::error::Error + 'static), hint: Option<String>, code: u8) -> ExitCode {
    let report = Report(e, hint).to_string();
    for line in report.lines() {
        eprintln!("kubejoin: {line}");
    }
    ExitCode::from(code)
}
