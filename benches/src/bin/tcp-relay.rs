//! The floor of any loopback proxy: a runtime command that starts its arguments as the
//! function with `AWS_LAMBDA_RUNTIME_API` pointing at itself, and copies bytes between each
//! connection the function opens and a connection of its own to the real Runtime API. No HTTP,
//! no buffering beyond one read, a blocking thread per direction (the quickest hand-off std
//! offers). Whatever the exec mode's proxy costs above this is its own work; what this costs
//! above the function run directly is the price of one more process on the path.
//!
//! Usage (as the runtime command of `lambda-emulator`): `tcp-relay <command> [args...]`.
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::process::{Command, ExitCode};
use std::thread;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((program, program_args)) = args.split_first() else {
        eprintln!("tcp-relay: usage: tcp-relay <command> [args...]");
        return ExitCode::FAILURE;
    };
    let Some(upstream) = std::env::var("AWS_LAMBDA_RUNTIME_API")
        .ok()
        .and_then(|api| api.to_socket_addrs().ok()?.next())
    else {
        eprintln!("tcp-relay: AWS_LAMBDA_RUNTIME_API is not a host:port");
        return ExitCode::FAILURE;
    };
    let listener = match TcpListener::bind(("127.0.0.1", 0)) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("tcp-relay: cannot listen on 127.0.0.1: {err}");
            return ExitCode::FAILURE;
        }
    };
    let local = match listener.local_addr() {
        Ok(local) => local,
        Err(err) => {
            eprintln!("tcp-relay: {err}");
            return ExitCode::FAILURE;
        }
    };
    let mut child = match Command::new(program)
        .args(program_args)
        .env("AWS_LAMBDA_RUNTIME_API", local.to_string())
        .spawn()
    {
        Ok(child) => child,
        Err(err) => {
            eprintln!("tcp-relay: cannot start {program}: {err}");
            return ExitCode::FAILURE;
        }
    };
    thread::spawn(move || accept(&listener, upstream));
    match child.wait() {
        Ok(status) if status.success() => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("tcp-relay: {program} ended: {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("tcp-relay: waiting for {program}: {err}");
            ExitCode::FAILURE
        }
    }
}

fn accept(listener: &TcpListener, upstream: SocketAddr) {
    for downstream in listener.incoming() {
        let relayed = downstream.and_then(|downstream| {
            let upstream = TcpStream::connect(upstream)?;
            downstream.set_nodelay(true)?;
            upstream.set_nodelay(true)?;
            let (down_read, up_write) = (downstream.try_clone()?, upstream.try_clone()?);
            thread::spawn(move || copy(down_read, up_write));
            thread::spawn(move || copy(upstream, downstream));
            Ok(())
        });
        if let Err(err) = relayed {
            eprintln!("tcp-relay: a connection could not be relayed: {err}");
        }
    }
}

/// Copies until `from` ends, then ends `to`'s writing side (so the peer sees the close).
fn copy(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(Shutdown::Write);
    let _ = from.shutdown(Shutdown::Read);
}
