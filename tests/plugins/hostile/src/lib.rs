//! Hostile test plugin: misbehaves on purpose, chosen by the record body,
//! so that one batch can mix well-behaved and hostile records.
//!
//! | body     | behaviour                                         |
//! |----------|---------------------------------------------------|
//! | `loop`   | spins forever (deadline trap)                     |
//! | `alloc`  | allocates without bound (memory limit)            |
//! | `panic`  | panics with a message (trap)                      |
//! | `fs`     | tries to read `/etc/passwd` (denied)              |
//! | `env`    | tries to read `HOME` and `PATH` (empty)           |
//! | `net`    | tries to open a TCP connection (denied)           |
//! | `clock`  | reports the wall clock it sees (frozen)           |
//! | `flood`  | logs 200,000 lines of 1 KB, then echoes           |
//! | `badtype`| emits content type `"not a type \u{0}\n"`          |
//! | `bigid`  | emits an output whose id is 10 MB                 |
//! | other    | echoed unchanged                                  |
//!
//! The sandbox probes (`fs`, `env`, `net`, `clock`) return bad-input errors
//! when the probe is denied, and a plugin failure if it unexpectedly
//! succeeds, so a test can tell a working sandbox from a leaky one.

use weir_sdk::{Error, Info, Record, Transform};

/// The hostile plugin.
pub struct Hostile;

impl Transform for Hostile {
    type Config = weir_sdk::NoConfig;

    fn info() -> Info {
        Info::new("hostile", env!("CARGO_PKG_VERSION"))
            .accepts(&["*/*"])
            .produces(&["*/*"])
    }

    fn new(_config: weir_sdk::NoConfig) -> Result<Self, Error> {
        Ok(Hostile)
    }

    fn process(&mut self, record: Record) -> Result<Vec<Record>, Error> {
        match record.body.as_slice() {
            b"loop" => spin_forever(),
            b"alloc" => allocate_without_bound(),
            b"panic" => panic!("hostile plugin panics on purpose for {}", record.id),
            b"fs" => denied("read /etc/passwd", std::fs::read("/etc/passwd").map(|_| ())),
            b"env" => match (std::env::var("HOME"), std::env::var("PATH")) {
                (Err(_), Err(_)) => Err(Error::bad_input("denied: environment is empty")),
                _ => Err(Error::failure(
                    "sandbox leak: environment variables are visible",
                )),
            },
            b"net" => denied(
                "connect to 127.0.0.1:9",
                std::net::TcpStream::connect("127.0.0.1:9").map(|_| ()),
            ),
            b"clock" => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default();
                Ok(vec![record.derive(
                    "text/plain",
                    now.as_secs().to_string().into_bytes(),
                )])
            }
            b"flood" => {
                let line = "x".repeat(1024);
                for n in 0..200_000u32 {
                    weir_sdk::log(weir_sdk::Level::Info, &line, &[("n", &n.to_string())]);
                }
                Ok(vec![record])
            }
            b"badtype" => Ok(vec![record.derive("not a type \u{0}\n", b"x".to_vec())]),
            b"bigid" => {
                let mut output = record.derive("text/plain", b"x".to_vec());
                output.id = "i".repeat(10 << 20);
                Ok(vec![output])
            }
            _ => Ok(vec![record]),
        }
    }
}

fn denied(what: &str, attempt: std::io::Result<()>) -> Result<Vec<Record>, Error> {
    match attempt {
        Err(e) => Err(Error::bad_input(format!("denied: {what}: {e}"))),
        Ok(()) => Err(Error::failure(format!("sandbox leak: could {what}"))),
    }
}

fn spin_forever() -> ! {
    let mut n: u64 = 0;
    loop {
        n = std::hint::black_box(n.wrapping_add(1));
    }
}

fn allocate_without_bound() -> ! {
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    loop {
        hoard.push(vec![1u8; 16 << 20]);
        std::hint::black_box(&hoard);
    }
}

weir_sdk::export!(Hostile);
