//! `kubejoin-testcp`: the command line is in `cli`; this only hands it the arguments.

fn main() -> std::process::ExitCode {
    let code = kubejoin_testcp::cli::run(std::env::args().collect());
    std::process::ExitCode::from(u8::try_from(code).unwrap_or(1))
}
