//! The `memsilo` command (`memsilo serve --data DIR --listen ADDR`).

fn main() {
    let code = memsilo_http::run_cli(std::env::args().skip(1).collect());
    std::process::exit(code);
}
