//! Synthetic sessions, deterministic for a seed: records with the skew of a real deployment (a
//! few users, policies and servers account for most sessions), and terminal text that looks like
//! shell work (prompts, commands, logs, listings, tables) over a Zipf-distributed vocabulary.
//!
//! Rare marker words go into the text at a known low rate, and the generator remembers which
//! sessions got each, so a query for one has an exactly known, small answer.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use custos_sessions::{Endpoint, SessionRecord, Verdict};
use custos_trail::text::{TextChunk, TextKind};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub const USERS: usize = 2_000;
pub const SERVERS: usize = 5_000;
pub const VOCABULARY: usize = 50_000;
pub const MARKERS: usize = 16;
/// One output line in this many carries a marker word: ~90 sessions per marker in 10 GiB.
pub const MARKER_EVERY: u32 = 100_000;
/// 2025-01-01T00:00:00Z: sessions start within the year after it.
pub const YEAR_START: i64 = 1_735_689_600_000_000;
pub const DAY: i64 = 86_400_000_000;
pub const YEAR_DAYS: i64 = 365;
/// Sessions with text get between these many bytes of it (log-uniform: median ~90 KiB, mean
/// ~550 KiB), so 10 GiB is ~20,000 sessions from KBs to MBs.
const TEXT_MIN: f64 = 2048.0;
const TEXT_MAX: f64 = 4.0 * 1024.0 * 1024.0;

/// A skewed choice of `0..n`: `k` with probability ∝ ~1/(k+1) (Zipf, s = 1). The inverse of the
/// continuous log-uniform, one `powf` per draw: cheap enough for every word of 10 GiB of text.
pub fn zipf(rng: &mut impl Rng, n: usize) -> usize {
    let u: f64 = rng.random();
    (((n as f64 + 1.0).powf(u) - 1.0) as usize).min(n - 1)
}

/// (year, month, day) of a day number since 1970-01-01 (H. Hinnant's `civil_from_days`).
pub fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `YYYY-MM-DD` of a Unix time in microseconds.
pub fn date(micros: i64) -> String {
    let (y, m, d) = civil(micros.div_euclid(DAY));
    format!("{y:04}-{m:02}-{d:02}")
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Ssh,
    Rdp,
    Telnet,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Protocol::Ssh => "SSH",
            Protocol::Rdp => "RDP",
            Protocol::Telnet => "TELNET",
        }
    }

    fn port(self) -> u16 {
        match self {
            Protocol::Ssh => 22,
            Protocol::Rdp => 3389,
            Protocol::Telnet => 23,
        }
    }
}

pub struct Policy {
    pub name: String,
    id: String,
    protocol: Protocol,
}

pub struct Server {
    ip: IpAddr,
    host: String,
}

/// The fixed population sessions are drawn from: users, policies, servers, words.
pub struct World {
    pub users: Vec<String>,
    pub policies: Vec<Policy>,
    servers: Vec<Server>,
    /// By rank: word 0 is the most frequent.
    pub vocab: Vec<String>,
    /// Never produced otherwise (pseudo-words have no `q`).
    pub markers: Vec<String>,
}

impl World {
    pub fn new(seed: u64) -> World {
        let mut rng = StdRng::seed_from_u64(seed);
        let vocab = unique(&mut rng, VOCABULARY, pseudo_word);
        let mut users: Vec<String> = ["root", "admin", "deploy", "ansible", "backup"]
            .map(String::from)
            .to_vec();
        let mut taken: HashSet<String> = users.iter().cloned().collect();
        while users.len() < USERS {
            let initial = char::from(b'a' + rng.random_range(0..26u8));
            let name = format!("{initial}{}", pseudo_word(&mut rng));
            if taken.insert(name.clone()) {
                users.push(name);
            }
        }
        Self {
            users,
            policies: policies(&mut rng),
            servers: (0..SERVERS).map(server).collect(),
            vocab,
            markers: (0..MARKERS).map(|i| format!("qqmark{i:02}")).collect(),
        }
    }

    fn word(&self, rng: &mut impl Rng) -> &str {
        &self.vocab[zipf(rng, self.vocab.len())]
    }
}

fn unique(rng: &mut StdRng, n: usize, mut make: impl FnMut(&mut StdRng) -> String) -> Vec<String> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let word = make(rng);
        if seen.insert(word.clone()) {
            out.push(word);
        }
    }
    out
}

/// A pronounceable non-word of 2–3 syllables ("strailo", "kenbrout").
fn pseudo_word(rng: &mut StdRng) -> String {
    const ONSETS: &[&str] = &[
        "b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z",
        "br", "ch", "cl", "dr", "fl", "gr", "kr", "pl", "pr", "sh", "sk", "sl", "st", "str", "th",
        "tr",
    ];
    const VOWELS: &[&str] = &["a", "e", "i", "o", "u", "ai", "ea", "io", "ou"];
    const CODAS: &[&str] = &[
        "", "", "", "n", "r", "s", "t", "l", "m", "x", "nd", "rt", "st",
    ];
    let mut word = String::new();
    for _ in 0..rng.random_range(2..=3) {
        word.push_str(ONSETS[rng.random_range(0..ONSETS.len())]);
        word.push_str(VOWELS[rng.random_range(0..VOWELS.len())]);
        word.push_str(CODAS[rng.random_range(0..CODAS.len())]);
    }
    word
}

/// 50 connection policies: 40 SSH (environment × purpose), 7 RDP, 3 TELNET.
fn policies(rng: &mut StdRng) -> Vec<Policy> {
    const ENVS: [&str; 5] = ["prod", "stage", "dev", "lab", "dmz"];
    const PURPOSES: [&str; 8] = [
        "web", "db", "ops", "admin", "k8s", "build", "backup", "batch",
    ];
    let mut named: Vec<(String, Protocol)> = Vec::new();
    for env in ENVS {
        for purpose in PURPOSES {
            named.push((format!("{env}_{purpose}_ssh"), Protocol::Ssh));
        }
    }
    for env in ENVS {
        named.push((format!("{env}_windows_rdp"), Protocol::Rdp));
    }
    named.push(("citrix_rdp".into(), Protocol::Rdp));
    named.push(("jump_rdp".into(), Protocol::Rdp));
    for name in ["legacy_switch_telnet", "lab_telnet", "oob_console_telnet"] {
        named.push((name.into(), Protocol::Telnet));
    }
    named
        .into_iter()
        .map(|(name, protocol)| Policy {
            name,
            id: format!("{:032x}", rng.random::<u128>()),
            protocol,
        })
        .collect()
}

fn server(i: usize) -> Server {
    const ROLES: [&str; 10] = [
        "web", "db", "app", "cache", "k8s-node", "bastion", "build", "mail", "log", "mon",
    ];
    let i32 = i as u32;
    Server {
        ip: IpAddr::V4(Ipv4Addr::new(
            172,
            16 + (i32 / 62_500) as u8,
            ((i32 / 250) % 250) as u8,
            (i32 % 250 + 1) as u8,
        )),
        host: format!("{}-{i:04}", ROLES[i % ROLES.len()]),
    }
}

/// What later phases need of a generated session (a million full records would cost ~0.5 GB).
pub struct Session {
    pub key: String,
    pub user: u32,
    server: u32,
    pub start: i64,
    /// Seconds.
    duration: i64,
    /// An accepted, ended SSH or TELNET session: one that can have terminal text.
    has_terminal: bool,
}

/// Start times of `n` sessions over the year, in order (a store saves records as they come);
/// three in four in working hours.
pub fn start_times(rng: &mut StdRng, n: usize) -> Vec<i64> {
    let mut times: Vec<i64> = (0..n)
        .map(|_| {
            let day = rng.random_range(0..YEAR_DAYS);
            let second = if rng.random_bool(0.75) {
                rng.random_range(8 * 3600..18 * 3600)
            } else {
                rng.random_range(0..86_400)
            };
            YEAR_START + day * DAY + second * 1_000_000 + rng.random_range(0..1_000_000)
        })
        .collect();
    times.sort_unstable();
    times
}

/// Draws session records.
pub struct Records<'a> {
    world: &'a World,
    rng: StdRng,
    /// Policy indices per protocol, so the protocol mix is fixed (SSH 88 %, RDP 10 %, TELNET 2 %)
    /// and policies are skewed within it.
    by_protocol: [Vec<usize>; 3],
}

impl<'a> Records<'a> {
    pub fn new(world: &'a World, seed: u64) -> Records<'a> {
        let of = |p: Protocol| {
            (0..world.policies.len())
                .filter(|&i| world.policies[i].protocol == p)
                .collect()
        };
        Records {
            world,
            rng: StdRng::seed_from_u64(seed),
            by_protocol: [of(Protocol::Ssh), of(Protocol::Rdp), of(Protocol::Telnet)],
        }
    }

    pub fn next(&mut self, start: i64) -> (SessionRecord, Session) {
        let world = self.world;
        let rng = &mut self.rng;
        let pick = rng.random_range(0..100);
        let family = &self.by_protocol[match pick {
            0..88 => 0,
            88..98 => 1,
            _ => 2,
        }];
        let policy = &world.policies[family[zipf(rng, family.len())]];
        let protocol = policy.protocol;
        let user = zipf(rng, world.users.len());
        let server = zipf(rng, world.servers.len());
        let active = rng.random_ratio(1, 100);
        let verdict = if active {
            Verdict::Accept
        } else {
            match rng.random_range(0..1000) {
                0..930 => Verdict::Accept,
                930..970 => Verdict::AuthFail,
                970..990 => Verdict::Deny,
                990..997 => Verdict::Fail,
                _ => Verdict::Terminated,
            }
        };
        let duration = match verdict {
            Verdict::AuthFail | Verdict::Deny => rng.random_range(0..10),
            Verdict::Fail => rng.random_range(0..30),
            // Log-uniform from 2 s to 8 h.
            _ => (2.0 * 14_400f64.powf(rng.random::<f64>())) as i64,
        };
        let end = (!active).then(|| start + duration * 1_000_000 + rng.random_range(0..1_000_000));
        let accepted = matches!(verdict, Verdict::Accept | Verdict::Terminated);
        let key = session_key(rng);
        let user_name = &world.users[user];
        let target = &world.servers[server];
        let reason = match verdict {
            Verdict::Accept => None,
            Verdict::AuthFail => Some("authentication failed"),
            Verdict::Deny => Some("denied by the connection policy"),
            Verdict::Fail => Some("target unreachable"),
            Verdict::Terminated => Some("terminated by an administrator"),
        };
        let record = SessionRecord {
            session_id: format!("svc/{key}/{}:1", policy.name),
            key: key.clone(),
            protocol: protocol.name().into(),
            node_id: format!("node-{}", 1 + rng.random_range(0..2)),
            client: Endpoint {
                ip: IpAddr::V4(Ipv4Addr::new(
                    10,
                    rng.random_range(0..16),
                    rng.random(),
                    rng.random(),
                )),
                port: rng.random_range(32_768..61_000),
            },
            gateway: Endpoint {
                ip: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 1)),
                port: protocol.port(),
            },
            server: (verdict != Verdict::Deny).then(|| Endpoint {
                ip: target.ip,
                port: if rng.random_ratio(1, 20) {
                    2222
                } else {
                    protocol.port()
                },
            }),
            server_local: accepted.then(|| Endpoint {
                ip: IpAddr::V4(Ipv4Addr::new(10, 255, 0, 2 + rng.random_range(0..4))),
                port: rng.random_range(32_768..61_000),
            }),
            gateway_username: Some(user_name.clone()),
            server_username: Some(user_name.clone()),
            connection_policy: policy.name.clone(),
            connection_policy_id: policy.id.clone(),
            channel_policy: Some(
                if rng.random_bool(0.8) {
                    "all"
                } else {
                    "shell-only"
                }
                .into(),
            ),
            auth_method: Some(
                match (protocol, rng.random_range(0..10)) {
                    (Protocol::Ssh, 0..6) => "publickey",
                    (Protocol::Ssh, 6..9) => "password",
                    (Protocol::Ssh, _) => "keyboard-interactive",
                    _ => "password",
                }
                .into(),
            ),
            start_time: start,
            end_time: end,
            active,
            verdict,
            reason: reason.map(String::from),
            has_accepted_channel: accepted,
            trail: accepted.then(|| format!("trails/{key}.trail")),
            archived: start < YEAR_START + 90 * DAY && rng.random_bool(0.3),
            archive: None,
        };
        let session = Session {
            key,
            user: user as u32,
            server: server as u32,
            start,
            duration,
            has_terminal: accepted && !active && protocol != Protocol::Rdp,
        };
        (record, session)
    }
}

/// 22 base62 characters, like real keys (their digests spread `sid`s the same way).
fn session_key(rng: &mut StdRng) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

/// Which sessions get how many bytes of text: random sessions that can have text, until the
/// budget is spent, in session (time) order as a gateway would produce it.
pub fn plan_text(sessions: &[Session], budget: u64, rng: &mut StdRng) -> Vec<(usize, u64)> {
    let mut candidates: Vec<usize> = (0..sessions.len())
        .filter(|&i| sessions[i].has_terminal)
        .collect();
    // Fisher–Yates: a random subset, reproducible for the seed.
    for i in (1..candidates.len()).rev() {
        candidates.swap(i, rng.random_range(0..=i));
    }
    let mut plan = Vec::new();
    let mut left = budget;
    for i in candidates {
        if left == 0 {
            break;
        }
        let size = (TEXT_MIN * (TEXT_MAX / TEXT_MIN).powf(rng.random::<f64>())) as u64;
        let size = size.min(left);
        plan.push((i, size));
        left -= size;
    }
    // Too few sessions for the budget (a small --records): the rest is shared out.
    if left > 0 && !plan.is_empty() {
        let share = left.div_ceil(plan.len() as u64);
        for (_, size) in &mut plan {
            *size += share.min(left);
            left -= share.min(left);
        }
    }
    plan.sort_unstable();
    plan
}

/// What a command prints.
#[derive(Clone, Copy)]
enum Output {
    Nothing,
    Listing,
    Log,
    Grep,
    Passwd,
    Pods,
    Rows,
    Prose,
    Status,
    Ps,
    Df,
    GitLog,
}

const SERVICES: &[&str] = &[
    "nginx",
    "postgresql",
    "redis",
    "sshd",
    "docker",
    "kubelet",
    "haproxy",
    "cron",
    "rsyslog",
    "prometheus",
    "grafana-server",
    "elasticsearch",
];
const NAMESPACES: &[&str] = &["default", "kube-system", "prod", "staging", "monitoring"];
const EXTENSIONS: &[&str] = &["log", "conf", "yaml", "txt", "sh", "py", "json", "gz"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// The text of one session, produced a command at a time.
pub struct Shell {
    pub session: usize,
    pub key: String,
    rng: StdRng,
    target: u64,
    /// Bytes of text produced so far (line contents; the index never sees newlines).
    pub written: u64,
    /// Microseconds since the session start; lines are spread over the session's duration.
    at: u64,
    step: u64,
    start: i64,
    user: String,
    host: String,
    cwd: String,
    pub done: bool,
}

impl Shell {
    pub fn new(world: &World, index: usize, session: &Session, target: u64, seed: u64) -> Shell {
        let lines = (target / 60).max(1);
        let duration = (session.duration.max(1) as u64) * 1_000_000;
        Shell {
            session: index,
            key: session.key.clone(),
            // Each session its own stream: the same seed gives the same text whatever the
            // interleaving.
            rng: StdRng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            target,
            written: 0,
            at: 0,
            step: (duration / lines).max(1),
            start: session.start,
            user: world.users[session.user as usize].clone(),
            host: world.servers[session.server as usize].host.clone(),
            cwd: "~".into(),
            done: false,
        }
    }

    fn emit(&mut self, out: &mut Vec<TextChunk>, kind: TextKind, text: String) {
        self.at += self.rng.random_range(0..=2 * self.step);
        self.written += text.len() as u64;
        out.push(TextChunk {
            at: self.at,
            kind,
            text,
        });
    }

    /// One command and its output, appended to `out`; the index of each marker word put in is
    /// appended to `marks`. The last block ends the session (`exit`).
    pub fn block(&mut self, world: &World, out: &mut Vec<TextChunk>, marks: &mut Vec<usize>) {
        if self.written >= self.target {
            self.emit(out, TextKind::Command, "exit".into());
            self.emit(out, TextKind::Screen, "logout".into());
            self.done = true;
            return;
        }
        let (command, output, lines) = self.command(world);
        // The typed line, and the shell's echo of it after the prompt.
        let echo = format!("{}@{}:{}$ {command}", self.user, self.host, self.cwd);
        self.emit(out, TextKind::Screen, echo);
        self.emit(out, TextKind::Command, command);
        let mut line = String::with_capacity(128);
        for _ in 0..lines {
            if self.written >= self.target {
                break;
            }
            line.clear();
            self.output_line(world, output, &mut line);
            if self.rng.random_ratio(1, MARKER_EVERY) {
                let marker = self.rng.random_range(0..world.markers.len());
                line.push(' ');
                line.push_str(&world.markers[marker]);
                marks.push(marker);
            }
            self.emit(out, TextKind::Screen, line.clone());
        }
    }

    /// A command line, what it prints, and how many lines.
    fn command(&mut self, world: &World) -> (String, Output, u32) {
        let rng = &mut self.rng;
        let service = SERVICES[zipf(rng, SERVICES.len())];
        let word = world.word(rng).to_string();
        let sudo = if rng.random_ratio(1, 4) { "sudo " } else { "" };
        let (command, output, lines) = match rng.random_range(0..80) {
            0..12 => {
                let dir = self.dir(world);
                (format!("ls -la {dir}"), Output::Listing, 3..=40)
            }
            12..22 => {
                let dir = self.dir(world);
                self.cwd = dir.clone();
                (format!("cd {dir}"), Output::Nothing, 0..=0)
            }
            22..26 => (
                format!("sudo systemctl restart {service}"),
                Output::Nothing,
                0..=0,
            ),
            26..30 => (
                format!("sudo systemctl status {service}"),
                Output::Status,
                8..=24,
            ),
            30..32 => (format!("{sudo}cat /etc/passwd"), Output::Passwd, 20..=45),
            32..36 => (
                format!("{sudo}grep -r ERROR /var/log"),
                Output::Grep,
                5..=300,
            ),
            36..41 => (format!("vim {word}.conf"), Output::Prose, 10..=60),
            41..47 => (
                format!("{sudo}tail -f /var/log/{service}.log"),
                Output::Log,
                50..=2000,
            ),
            47..53 => {
                let ns = NAMESPACES[rng.random_range(0..NAMESPACES.len())];
                (format!("kubectl get pods -n {ns}"), Output::Pods, 5..=60)
            }
            53..57 => {
                let limit = rng.random_range(10..=200);
                (
                    format!("psql -c 'select * from {word} limit {limit}'"),
                    Output::Rows,
                    limit..=limit,
                )
            }
            57..61 => (
                format!("{sudo}journalctl -u {service} --since today"),
                Output::Log,
                20..=500,
            ),
            61..64 => (format!("ps aux | grep {service}"), Output::Ps, 2..=8),
            64..66 => ("df -h".into(), Output::Df, 6..=12),
            66..69 => {
                let n = rng.random_range(5..=40);
                (format!("git log --oneline -n {n}"), Output::GitLog, n..=n)
            }
            69..74 => {
                let ext = EXTENSIONS[rng.random_range(0..EXTENSIONS.len())];
                (format!("{sudo}less {word}.{ext}"), Output::Prose, 20..=200)
            }
            _ => {
                let simple = ["pwd", "whoami", "date", "uptime", "hostname"];
                let command = simple[rng.random_range(0..simple.len())];
                (command.to_string(), Output::Prose, 1..=1)
            }
        };
        let lines = self.rng.random_range(lines);
        (command, output, lines)
    }

    fn dir(&mut self, world: &World) -> String {
        let word = world.word(&mut self.rng);
        match self.rng.random_range(0..5) {
            0 => "/var/log".into(),
            1 => format!(
                "/etc/{}",
                SERVICES[self.rng.random_range(0..SERVICES.len())]
            ),
            2 => format!("/opt/{word}"),
            3 => format!("~/src/{word}"),
            _ => format!("/srv/{word}"),
        }
    }

    fn words(&mut self, world: &World, line: &mut String, n: usize) {
        for i in 0..n {
            if i > 0 {
                line.push(' ');
            }
            line.push_str(world.word(&mut self.rng));
        }
    }

    /// `2025-03-14T10:12:01.331Z` of the current line.
    fn timestamp(&self, line: &mut String) {
        let micros = self.start + self.at as i64;
        let (y, mo, d) = civil(micros.div_euclid(DAY));
        let of_day = micros.rem_euclid(DAY) / 1000;
        let (h, mi, s, ms) = (
            of_day / 3_600_000,
            of_day / 60_000 % 60,
            of_day / 1000 % 60,
            of_day % 1000,
        );
        let _ = write!(line, "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z");
    }

    fn log_line(&mut self, world: &World, line: &mut String, level: Option<&str>) {
        self.timestamp(line);
        let level = level.unwrap_or(match self.rng.random_range(0..100) {
            0..75 => "INFO ",
            75..87 => "WARN ",
            87..95 => "ERROR",
            _ => "DEBUG",
        });
        let service = SERVICES[zipf(&mut self.rng, SERVICES.len())];
        let pid = self.rng.random_range(100..65_000);
        let _ = write!(line, " {level} {service}[{pid}]: ");
        let n = self.rng.random_range(3..=12);
        self.words(world, line, n);
        let key = world.word(&mut self.rng);
        let value = self.rng.random_range(0..10_000);
        let _ = write!(line, " {key}={value}");
    }

    fn output_line(&mut self, world: &World, output: Output, line: &mut String) {
        let rng = &mut self.rng;
        match output {
            Output::Nothing | Output::Prose => {
                let n = rng.random_range(3..=16);
                self.words(world, line, n);
            }
            Output::Log => self.log_line(world, line, None),
            Output::Grep => {
                let service = SERVICES[zipf(rng, SERVICES.len())];
                let _ = write!(line, "/var/log/{service}/{}.log:", world.word(rng));
                self.log_line(world, line, Some("ERROR"));
            }
            Output::Listing => {
                let dir = rng.random_ratio(1, 5);
                let perm = if dir { "drwxr-xr-x" } else { "-rw-r--r--" };
                let size = if dir {
                    4096
                } else {
                    rng.random_range(0..2_000_000)
                };
                let month = MONTHS[rng.random_range(0..12)];
                let (day, h, m) = (
                    rng.random_range(1..=28),
                    rng.random_range(0..24),
                    rng.random_range(0..60),
                );
                let owner = &self.user;
                let name = world.word(rng);
                let ext = EXTENSIONS[rng.random_range(0..EXTENSIONS.len())];
                let _ = write!(
                    line,
                    "{perm} 1 {owner} {owner} {size:>9} {month} {day:>2} {h:02}:{m:02} {name}.{ext}"
                );
            }
            Output::Passwd => {
                let (name, uid) = (world.word(rng), rng.random_range(1000..60_000));
                let _ = write!(
                    line,
                    "{name}:x:{uid}:{uid}:{name} {}:/home/{name}:/bin/bash",
                    world.word(rng)
                );
            }
            Output::Pods => {
                let status = match rng.random_range(0..20) {
                    0 => "CrashLoopBackOff",
                    1 => "Pending",
                    2 => "Completed",
                    _ => "Running",
                };
                let _ = write!(
                    line,
                    "{}-{:x}-{:05x}   1/1   {status}   {}   {}d",
                    world.word(rng),
                    rng.random_range(0x1000_0000u32..0xffff_ffff),
                    rng.random_range(0..0xf_ffffu32),
                    rng.random_range(0..5),
                    rng.random_range(0..400)
                );
            }
            Output::Rows => {
                let id = rng.random_range(1..10_000_000);
                let (a, b, c) = (world.word(rng), world.word(rng), world.word(rng));
                let day = rng.random_range(0..YEAR_DAYS);
                let _ = write!(
                    line,
                    " {id:>8} | {a} | {b}@{c}.example | {}",
                    date(YEAR_START + day * DAY)
                );
            }
            Output::Status => {
                let service = SERVICES[rng.random_range(0..SERVICES.len())];
                match rng.random_range(0..4) {
                    0 => {
                        let _ = write!(line, "● {service}.service - {}", world.word(rng));
                    }
                    1 => line.push_str("     Active: active (running) since Mon; 3 days ago"),
                    2 => {
                        let _ = write!(
                            line,
                            "   Main PID: {} ({service})",
                            rng.random_range(100..65_000)
                        );
                    }
                    _ => self.log_line(world, line, None),
                }
            }
            Output::Ps => {
                let service = SERVICES[rng.random_range(0..SERVICES.len())];
                let _ = write!(
                    line,
                    "{} {:>7} 0.{} 1.{} {:>8} {:>7} ?  Ssl  10:{:02}   0:{:02} /usr/sbin/{service} --{}",
                    self.user,
                    rng.random_range(100..65_000),
                    rng.random_range(0..10),
                    rng.random_range(0..10),
                    rng.random_range(10_000..9_000_000),
                    rng.random_range(1_000..900_000),
                    rng.random_range(0..60),
                    rng.random_range(0..60),
                    world.word(rng)
                );
            }
            Output::Df => {
                let size = rng.random_range(10..2000);
                let used = rng.random_range(0..size);
                let _ = write!(
                    line,
                    "/dev/sd{}{}  {size}G  {used}G  {}G  {}% /{}",
                    char::from(b'a' + rng.random_range(0..4u8)),
                    rng.random_range(1..4),
                    size - used,
                    used * 100 / size,
                    world.word(rng)
                );
            }
            Output::GitLog => {
                let verb = ["Fix", "Add", "Update", "Remove", "Refactor"][rng.random_range(0..5)];
                let _ = write!(line, "{:07x} {verb} ", rng.random_range(0..0xfff_ffffu32));
                let n = rng.random_range(2..=6);
                self.words(world, line, n);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(date(YEAR_START), "2025-01-01");
        assert_eq!(date(YEAR_START + 59 * DAY), "2025-03-01");
    }
}
