// moto's server for the tests (included with `#[path]`): KMS, Secrets Manager and SSM on a free
// 127.0.0.1 port. moto comes from `.ci/run`, which installs `moto[server]` into the workspace's
// `.venv` (or the venv named by `DD_TEST_VENV`).
#![allow(dead_code)]
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};

pub struct Moto {
    child: Child,
    pub endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn moto() -> Moto {
    let venv =
        std::env::var("DD_TEST_VENV").map_or_else(|_| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.venv")), PathBuf::from);
    let server = venv.join("bin/moto_server");
    assert!(
        server.exists(),
        "{} not found: run `.ci/run` (it installs moto[server] into .venv) or point DD_TEST_VENV at a venv with moto[server]",
        server.display()
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = Command::new(server)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto_server did not start on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

pub async fn sdk(endpoint: &str, region: &str) -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(bootstrap::api_key::aws_https_client())
        .region(Region::new(region.to_owned()))
        .endpoint_url(endpoint)
        .credentials_provider(aws_credential_types::Credentials::new("test", "test", None, None, "test"))
        .load()
        .await
}
