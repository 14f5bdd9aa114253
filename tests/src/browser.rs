//! A real headless Chromium (Debian's `chromium` package) driven over the
//! DevTools protocol, for tests of the status page: open a page, evaluate
//! JavaScript in it, read what it shows while it updates itself.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket, stream::MaybeTlsStream};

/// A running headless Chromium; killed when dropped.
pub struct Browser {
    child: Child,
    port: u16,
    _profile: tempfile::TempDir,
}

/// One open tab.
pub struct Page {
    socket: WebSocket<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

impl Browser {
    /// Start Chromium (`chromium` on the PATH, or `$WEIR_CHROMIUM`).
    pub fn start() -> Browser {
        let binary = std::env::var_os("WEIR_CHROMIUM")
            .map(PathBuf::from)
            .unwrap_or_else(|| "chromium".into());
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}): install Debian's `chromium` package \
                     (scripts/dev-services.sh install does)",
                    binary.display()
                )
            });
        // Chromium writes the port it chose into the profile.
        let port_file = profile.path().join("DevToolsActivePort");
        let deadline = Instant::now() + Duration::from_secs(30);
        let port = loop {
            if let Some(port) = std::fs::read_to_string(&port_file)
                .ok()
                .and_then(|text| text.lines().next()?.parse().ok())
            {
                break port;
            }
            assert!(Instant::now() < deadline, "Chromium did not start in 30 s");
            std::thread::sleep(Duration::from_millis(100));
        };
        Browser {
            child,
            port,
            _profile: profile,
        }
    }

    /// Open `url` in a new tab.
    pub fn open(&self, url: &str) -> Page {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut reader = BufReader::new(stream);
        write!(
            reader.get_mut(),
            "PUT /json/new?{url} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n\r\n",
            self.port
        )
        .unwrap();
        // DevTools keeps the connection open: read by Content-Length.
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let target: Value = serde_json::from_slice(&body).unwrap_or_else(|e| {
            panic!(
                "DevTools answered {:?}: {e}",
                String::from_utf8_lossy(&body)
            )
        });
        let id = target["id"].as_str().expect("a target id");
        let socket_url = format!("ws://127.0.0.1:{}/devtools/page/{id}", self.port);
        let (socket, _) = tungstenite::connect(socket_url).unwrap();
        Page { socket, next_id: 0 }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Page {
    /// Evaluate `expression` in the page; its value (JSON).
    pub fn eval(&mut self, expression: &str) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let request = json!({
            "id": id,
            "method": "Runtime.evaluate",
            "params": {"expression": expression, "returnByValue": true},
        });
        self.socket
            .send(Message::text(request.to_string()))
            .unwrap();
        loop {
            let Message::Text(text) = self.socket.read().unwrap() else {
                continue;
            };
            let answer: Value = serde_json::from_str(&text).unwrap();
            if answer["id"] == id {
                if let Some(exception) = answer["result"].get("exceptionDetails") {
                    panic!("{expression}: {exception}");
                }
                return answer["result"]["result"]["value"].clone();
            }
        }
    }

    /// The text of the element with `id` (empty if there is none).
    pub fn text(&mut self, id: &str) -> String {
        let expression =
            format!("(document.getElementById({id:?}) || {{textContent: ''}}).textContent");
        self.eval(&expression)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Wait until `predicate` holds of the element's text, up to `timeout`;
    /// the last text read.
    pub fn wait_for_text(
        &mut self,
        id: &str,
        timeout: Duration,
        predicate: impl Fn(&str) -> bool,
    ) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.text(id);
            if predicate(&text) || Instant::now() >= deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}
