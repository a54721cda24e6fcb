//! Test certificates made by the real `openssl` CLI (the independent peer), and an RFC 3161
//! time-stamping authority served on loopback by `openssl ts -reply` behind a tiny Python
//! HTTP server: a remote TSA as the gateway meets one, with nothing of ours inside.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{free_port, run};

/// Runs `openssl` in `dir`; panics with its stderr on failure. Returns stdout.
pub fn openssl(dir: &Path, args: &[&str]) -> Vec<u8> {
    let out = run(Command::new("openssl").current_dir(dir).args(args));
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A certificate and key in `dir`: `<name>.crt` and `<name>.key`.
pub struct Identity {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl Identity {
    pub fn cert_pem(&self) -> String {
        std::fs::read_to_string(&self.cert).unwrap()
    }
    pub fn key_pem(&self) -> String {
        std::fs::read_to_string(&self.key).unwrap()
    }
}

fn key_args(dir: &Path, algorithm: &str) -> Vec<String> {
    if algorithm == "ec" {
        openssl(
            dir,
            &["ecparam", "-name", "prime256v1", "-out", "p256.params"],
        );
        vec!["-newkey".into(), "ec:p256.params".into()]
    } else {
        vec!["-newkey".into(), algorithm.into()]
    }
}

/// A self-signed certificate (`algorithm`: `rsa:2048`, `rsa:3072` or `ec`), with optional
/// extra `-addext` values.
pub fn self_signed(dir: &Path, name: &str, algorithm: &str, extensions: &[&str]) -> Identity {
    let mut args: Vec<String> = vec!["req".into(), "-x509".into()];
    args.extend(key_args(dir, algorithm));
    args.extend(
        [
            "-nodes",
            "-days",
            "30",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
            "-subj",
            &format!("/CN={name}"),
        ]
        .map(String::from),
    );
    for ext in extensions {
        args.push("-addext".into());
        args.push((*ext).into());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(dir, &refs);
    Identity {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

/// A self-signed certificate as (certificate PEM, key PEM), made in a scratch directory.
pub fn self_signed_pem(name: &str, algorithm: &str, extensions: &[&str]) -> (String, String) {
    let dir = tempfile::tempdir().unwrap();
    let id = self_signed(dir.path(), name, algorithm, extensions);
    (id.cert_pem(), id.key_pem())
}

/// A certificate for `name` issued by `ca`.
pub fn issued_by(dir: &Path, ca: &Identity, name: &str, algorithm: &str) -> Identity {
    let mut args: Vec<String> = vec!["req".into()];
    args.extend(key_args(dir, algorithm));
    args.extend(
        [
            "-nodes",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.csr"),
            "-subj",
            &format!("/CN={name}"),
        ]
        .map(String::from),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    openssl(dir, &refs);
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &format!("{name}.csr"),
            "-CA",
            ca.cert.to_str().unwrap(),
            "-CAkey",
            ca.key.to_str().unwrap(),
            "-CAcreateserial",
            "-days",
            "30",
            "-out",
            &format!("{name}.crt"),
        ],
    );
    Identity {
        cert: dir.join(format!("{name}.crt")),
        key: dir.join(format!("{name}.key")),
    }
}

const TSA_SERVER: &str = r#"
import http.server, subprocess, sys, os, tempfile
port, workdir, mode = int(sys.argv[1]), sys.argv[2], sys.argv[3]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get('Content-Length', '0')))
        if mode == 'broken':
            self.send_response(500); self.end_headers(); return
        with tempfile.NamedTemporaryFile(dir=workdir, suffix='.tsq', delete=False) as f:
            f.write(body); query = f.name
        reply = query + '.tsr'
        ok = subprocess.run(['openssl', 'ts', '-reply', '-config', 'tsa.cnf', '-queryfile', query,
                             '-inkey', 'tsa.key', '-signer', 'tsa.crt', '-out', reply],
                            cwd=workdir, capture_output=True).returncode == 0
        if not ok:
            self.send_response(500); self.end_headers(); return
        data = open(reply, 'rb').read()
        self.send_response(200)
        self.send_header('Content-Type', 'application/timestamp-reply')
        self.send_header('Content-Length', str(len(data)))
        self.end_headers(); self.wfile.write(data)
    def log_message(self, *args): pass
http.server.ThreadingHTTPServer(('127.0.0.1', port), Handler).serve_forever()
"#;

const TSA_CONFIG: &str = "[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = .
serial = ./tsaserial
signer_digest = sha256
default_policy = 1.2.3.4.1
other_policies = 1.2.3.4.5
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = no
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
";

/// An RFC 3161 TSA on `http://127.0.0.1:<port>/`, answered by `openssl ts -reply`, with its
/// own self-signed certificate (`CN=Loopback TSA`, critical EKU timeStamping).
pub struct LoopbackTsa {
    pub url: String,
    pub cert: PathBuf,
    child: Child,
}

impl LoopbackTsa {
    /// `broken`: every request gets HTTP 500 (a TSA that is up but failing).
    pub fn start(dir: &Path, broken: bool) -> LoopbackTsa {
        let dir = dir.join(if broken { "tsa-broken" } else { "tsa" });
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "30",
                "-keyout",
                "tsa.key",
                "-out",
                "tsa.crt",
                "-subj",
                "/CN=Loopback TSA",
                "-addext",
                "extendedKeyUsage=critical,timeStamping",
            ],
        );
        std::fs::write(dir.join("tsa.cnf"), TSA_CONFIG).unwrap();
        std::fs::write(dir.join("tsaserial"), "01\n").unwrap();
        std::fs::write(dir.join("tsa.py"), TSA_SERVER).unwrap();
        let port = free_port();
        let mut child = Command::new("python3")
            .current_dir(&dir)
            .args(["tsa.py", &port.to_string(), dir.to_str().unwrap()])
            .arg(if broken { "broken" } else { "ok" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return LoopbackTsa {
                    url: format!("http://127.0.0.1:{port}/"),
                    cert: dir.join("tsa.crt"),
                    child,
                };
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("the loopback TSA did not start");
    }
}

impl Drop for LoopbackTsa {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
