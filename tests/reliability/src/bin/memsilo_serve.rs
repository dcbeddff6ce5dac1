//! `memsilo_serve serve --data DIR --listen 127.0.0.1:0 ...`: the `memsilo` server binary,
//! built inside this crate so its tests can run it as a real child process.

fn main() {
    std::process::exit(memsilo_http::run_cli(std::env::args().skip(1).collect()));
}
