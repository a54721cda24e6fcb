//! The searchable text of a recorded session: what appeared on the terminal and the commands
//! typed, one line at a time, each stamped with the time of its first byte so that a search hit
//! can open the replay at that moment.
//!
//! What is indexed, and why:
//! - Terminal channels only (those that got a `pty-req`): their data is text meant for a human.
//!   Server-to-client data (stdout and stderr) becomes [`TextKind::Screen`] lines;
//!   client-to-server data (keystrokes) becomes [`TextKind::Command`] lines.
//! - The command of every `exec` request, with or without a pty: it is the one readable thing
//!   about an `scp`, `rsync` or scripted `ssh host command` channel.
//!
//! What deliberately is not:
//! - Data of channels without a pty (sftp and other subsystems, scp, rsync, port forwards,
//!   `exec` without a pty): file contents and binary protocols would flood the index with noise
//!   and copy the transferred files into it.
//! - Keystrokes typed while the screen shows what looks like a password prompt (the channel's
//!   unfinished screen line ends with a colon and mentions a password, passphrase, PIN, code,
//!   ...): a typed password must never reach the index. This is a heuristic; see
//!   `looks_like_secret_prompt` for its limits. What it cannot know about, a password typed
//!   ahead *and* entered before its prompt arrived, is in the index like any typed line.
//! - Terminal escape sequences (colours, cursor movement, window titles, ...).
//!
//! This is not a terminal emulator (there is no screen grid): lines are rebuilt from the byte
//! stream with a few rules that fit shells and line-oriented programs (see `Screen`).
//! Full-screen programs give fragments of their rows. Command lines are the *typed bytes* with
//! simple line editing applied: history recall, Tab completion and cursor movement are not
//! reconstructed. The shell echoes the command it actually runs, so that is in the Screen text.
//!
//! Cost: the gateway feeds every record as it is written, so the work is linear in the bytes,
//! runs of plain text are appended whole, per-channel buffers are reused, and once a channel's
//! buffers have grown the only allocation is one `String` per emitted line.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::record::{Direction, Record};

/// Longest line emitted, in characters; longer lines continue in a new chunk. It bounds the
/// memory held per channel whatever a program prints.
pub const MAX_LINE_CHARS: usize = 2048;

/// How many bytes at the end of the screen line are searched for a secret-prompt keyword:
/// enough for "Password for 'https://alice@git.example.com': ", little to scan per keystroke.
const PROMPT_TAIL: usize = 256;

const BEL: u8 = 0x07;
const BS: u8 = 0x08;
const ESC: u8 = 0x1b;
const CAN: u8 = 0x18;
const SUB: u8 = 0x1a;
const DEL: u8 = 0x7f;
const CTRL_C: u8 = 0x03;
const CTRL_U: u8 = 0x15;
const CTRL_W: u8 = 0x17;
const REPLACEMENT: &str = "\u{FFFD}";

/// What a chunk of text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TextKind {
    /// A line the target printed on a terminal (stdout or stderr).
    Screen,
    /// A command line: keystrokes up to Enter, or an `exec` request's command.
    Command,
}

/// One line of searchable text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextChunk {
    /// Microseconds since the session start of the record that supplied the line's first
    /// character (the trail's record time), for linking a hit to the replay.
    pub at: u64,
    pub kind: TextKind,
    /// The line, without trailing whitespace; never blank; at most [`MAX_LINE_CHARS`]
    /// characters.
    pub text: String,
}

/// Turns a session's records, fed in order, into [`TextChunk`]s.
///
/// The same extractor serves the live gateway (one record at a time, with
/// [`TextExtractor::flush_idle`] on a timer) and an offline rebuild from a trail file.
#[derive(Debug, Default)]
pub struct TextExtractor {
    /// State of the terminal channels (those that got a `pty-req`). Ordered so that
    /// [`TextExtractor::finish`] emits in a stable order.
    channels: BTreeMap<u32, Channel>,
    /// Time of the latest record, for text completed by [`TextExtractor::finish`].
    last_at: u64,
}

impl TextExtractor {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds one record at time `at` (micros since start); pushes any completed chunks to `out`.
    pub fn push(&mut self, at: u64, record: &Record, out: &mut Vec<TextChunk>) {
        self.last_at = self.last_at.max(at);
        match record {
            // An open with a known id means the old channel ended without a recorded close
            // (ids are reused): its text is complete.
            Record::ChannelOpen { channel, .. } | Record::ChannelClose { channel } => {
                self.close(*channel, at, out);
            }
            Record::ChannelRequest {
                channel,
                request,
                details,
            } => self.request(*channel, request, details, at, out),
            Record::Data {
                channel,
                direction,
                extended,
                bytes,
            } => self.data(*channel, *direction, *extended, bytes.as_ref(), at, out),
            _ => {}
        }
    }

    /// Emits the screen lines whose first pending character arrived at least `idle_micros`
    /// before `now` (micros since start), so that a prompt or the last line of a long-running
    /// command becomes searchable while the session runs. The line stays current: text that
    /// follows on it is emitted later as a chunk of its own, so nothing is indexed twice.
    ///
    /// Typed lines are not flushed: they are not commands until Enter, and flushing would
    /// index a line later cancelled with Ctrl-C, or split it in two.
    pub fn flush_idle(&mut self, now: u64, idle_micros: u64, out: &mut Vec<TextChunk>) {
        for channel in self.channels.values_mut() {
            channel
                .screen
                .line
                .flush_idle(now, idle_micros, TextKind::Screen, out);
        }
    }

    /// Emits everything still pending (end of session), including a typed line never entered
    /// (unless typed at a password prompt), and forgets all channels.
    pub fn finish(&mut self, out: &mut Vec<TextChunk>) {
        let mut cx = Cx {
            at: self.last_at,
            out,
        };
        for (_, channel) in std::mem::take(&mut self.channels) {
            channel.finish(&mut cx);
        }
    }

    fn request(
        &mut self,
        channel: u32,
        request: &str,
        details: &Value,
        at: u64,
        out: &mut Vec<TextChunk>,
    ) {
        match request {
            // Created here, not at "shell"/"exec": the pty request comes first.
            "pty-req" => {
                self.channels.entry(channel).or_default();
            }
            "exec" => {
                if let Some(command) = details.get("command").and_then(Value::as_str) {
                    exec_command(command, at, out);
                }
            }
            // "subsystem" names a binary protocol (sftp): nothing to read. "shell", "env",
            // "signal", ... carry no text worth searching.
            _ => {}
        }
    }

    fn data(
        &mut self,
        channel: u32,
        direction: Direction,
        extended: bool,
        bytes: &[u8],
        at: u64,
        out: &mut Vec<TextChunk>,
    ) {
        // Not a terminal: file contents or a binary protocol.
        let Some(ch) = self.channels.get_mut(&channel) else {
            return;
        };
        let mut cx = Cx { at, out };
        match (direction, extended) {
            (Direction::ServerToClient, false) => ch.stdout.feed(bytes, &mut ch.screen, &mut cx),
            (Direction::ServerToClient, true) => ch.stderr.feed(bytes, &mut ch.screen, &mut cx),
            (Direction::ClientToServer, _) => {
                ch.input.begin_record(&ch.screen.line.text);
                ch.keys.feed(bytes, &mut ch.input, &mut cx);
            }
        }
    }

    fn close(&mut self, channel: u32, at: u64, out: &mut Vec<TextChunk>) {
        if let Some(ch) = self.channels.remove(&channel) {
            ch.finish(&mut Cx { at, out });
        }
    }
}

/// Emits an `exec` request's command, one Command chunk per line of it (almost always one).
/// Control characters are dropped: they are not searchable and must not corrupt the index.
fn exec_command(command: &str, at: u64, out: &mut Vec<TextChunk>) {
    let mut line = Line::default();
    let mut cx = Cx { at, out };
    let mut buf = [0u8; 4];
    for c in command.chars() {
        match c {
            '\n' | '\r' => line.end(TextKind::Command, cx.out),
            '\t' => fill(&mut line, " ", TextKind::Command, &mut cx),
            c if c.is_control() => {}
            c => fill(
                &mut line,
                c.encode_utf8(&mut buf),
                TextKind::Command,
                &mut cx,
            ),
        }
    }
    line.end(TextKind::Command, cx.out);
}

/// Where text goes while a record is processed: the record's time and the output.
struct Cx<'a> {
    at: u64,
    out: &'a mut Vec<TextChunk>,
}

/// One terminal channel. Stdout and stderr have decoders of their own (a sequence split in
/// one must not swallow the other) but share the screen line, as on the user's terminal.
#[derive(Debug, Default)]
struct Channel {
    stdout: Decoder,
    stderr: Decoder,
    screen: Screen,
    keys: Decoder,
    input: Input,
}

impl Channel {
    fn finish(mut self, cx: &mut Cx<'_>) {
        // Checked once more before the screen line goes: a password typed ahead of its prompt
        // and never entered is still a password.
        self.input.begin_record(&self.screen.line.text);
        self.stdout.finish(&mut self.screen, cx);
        self.stderr.finish(&mut self.screen, cx);
        self.screen.end_line(cx.out);
        self.keys.finish(&mut self.input, cx);
        self.input.end_line(cx.out);
    }
}

/// The current line of a channel, screen or keystrokes.
#[derive(Debug, Default)]
struct Line {
    /// Reused from line to line: cleared, never dropped, so its capacity stays.
    text: String,
    /// Characters in `text` (for the cap).
    chars: usize,
    /// Bytes of `text` already emitted by [`Line::flush_idle`]; the line is kept whole for
    /// backspaces and for recognising a password prompt.
    emitted: usize,
    /// Time of the first character after `emitted`; `None` while there is none.
    first_at: Option<u64>,
}

impl Line {
    /// Appends as much of `s` as the cap allows and returns the rest (the caller ends the line
    /// and appends the rest to the next one).
    fn append<'s>(&mut self, s: &'s str, at: u64) -> &'s str {
        let room = MAX_LINE_CHARS.saturating_sub(self.chars);
        // A string of no more bytes than room has no more characters: the common case skips
        // the character walk.
        let (head, rest) = if s.len() <= room {
            (s, "")
        } else {
            split_at_chars(s, room)
        };
        if !head.is_empty() {
            self.first_at.get_or_insert(at);
            self.text.push_str(head);
            self.chars += char_count(head);
        }
        rest
    }

    fn pop(&mut self) {
        if self.text.pop().is_some() {
            self.chars = self.chars.saturating_sub(1);
            if self.text.len() <= self.emitted {
                self.emitted = self.text.len();
                self.first_at = None;
            }
        }
    }

    /// Ctrl-W, as readline's unix-word-rubout: trailing blanks, then the word before them.
    fn delete_word(&mut self) {
        while self.text.ends_with(char::is_whitespace) {
            self.pop();
        }
        while self.text.ends_with(|c: char| !c.is_whitespace()) {
            self.pop();
        }
    }

    fn clear(&mut self) {
        self.text.clear();
        self.chars = 0;
        self.emitted = 0;
        self.first_at = None;
    }

    /// Pushes the part not yet emitted, if it is not blank.
    fn emit(&self, kind: TextKind, out: &mut Vec<TextChunk>) {
        let Some(at) = self.first_at else { return };
        let part = self.text.get(self.emitted..).unwrap_or_default();
        // A continuation starts wherever the idle flush cut the line: its leading blanks are
        // the separator after the part already emitted, not indentation.
        let part = if self.emitted > 0 {
            part.trim_start()
        } else {
            part
        };
        let part = part.trim_end();
        if !part.is_empty() {
            out.push(TextChunk {
                at,
                kind,
                text: part.to_owned(),
            });
        }
    }

    fn end(&mut self, kind: TextKind, out: &mut Vec<TextChunk>) {
        self.emit(kind, out);
        self.clear();
    }

    fn flush_idle(&mut self, now: u64, idle_micros: u64, kind: TextKind, out: &mut Vec<TextChunk>) {
        if self
            .first_at
            .is_some_and(|first| now.saturating_sub(first) >= idle_micros)
        {
            self.emit(kind, out);
            self.emitted = self.text.len();
            self.first_at = None;
        }
    }
}

/// Appends `s` to `line`, ending the line (and continuing on a new one) at the cap.
fn fill(line: &mut Line, s: &str, kind: TextKind, cx: &mut Cx<'_>) {
    let mut rest = s;
    while !rest.is_empty() {
        rest = line.append(rest, cx.at);
        if !rest.is_empty() {
            line.end(kind, cx.out);
        }
    }
}

/// Splits `s` after `n` characters (or at its end).
fn split_at_chars(s: &str, n: usize) -> (&str, &str) {
    let at = s.char_indices().nth(n).map_or(s.len(), |(i, _)| i);
    s.split_at_checked(at).unwrap_or((s, ""))
}

/// Characters in `s`: its bytes that are not UTF-8 continuation bytes (one pass, no decoding).
fn char_count(s: &str) -> usize {
    s.bytes().filter(|&b| b & 0xC0 != 0x80).count()
}

/// What the decoder reports, in stream order.
trait Sink {
    /// Printable text (never contains control characters).
    fn text(&mut self, s: &str, cx: &mut Cx<'_>);
    /// A C0 control byte or DEL, other than ESC.
    fn control(&mut self, byte: u8, cx: &mut Cx<'_>);
    /// The end of a CSI sequence (`ESC [ ... final_byte`).
    fn csi(&mut self, params: CsiParams, final_byte: u8, cx: &mut Cx<'_>);
    /// A two-byte escape sequence `ESC final_byte`.
    fn esc(&mut self, final_byte: u8, cx: &mut Cx<'_>);
}

/// What is kept of a CSI sequence's parameters: just enough to recognise the few that mean
/// something here (cursor moves to another row, bracketed paste markers).
#[derive(Debug, Default, Clone, Copy)]
struct CsiParams {
    /// The first numeric parameter (0 if absent).
    first: u32,
    /// Still reading the first parameter.
    in_first: bool,
    /// A private marker (`?`, `>`, ...) or an intermediate byte: not a standard sequence.
    private: bool,
}

/// Where the decoder is in the escape-sequence grammar (after ECMA-48 and the DEC/xterm
/// conventions terminals follow).
#[derive(Debug, Default, Clone, Copy)]
enum State {
    #[default]
    Ground,
    /// After ESC.
    Escape,
    /// After `ESC` and intermediate bytes (`ESC ( B`): waiting for the final byte.
    Intermediate,
    /// After `ESC N` / `ESC O` (SS2/SS3, e.g. arrow keys `ESC O A`): one more byte.
    SingleShift,
    Csi(CsiParams),
    /// OSC (`ESC ]`): until BEL or ST (`ESC \`).
    Osc,
    OscEscape,
    /// DCS, SOS, PM, APC (`ESC P`, `ESC X`, `ESC ^`, `ESC _`): until ST only. BEL does not end
    /// them: a tmux passthrough (`ESC P tmux; ...`) carries whole OSC sequences, BEL included.
    Str,
    StrEscape,
}

/// Splits a byte stream into text, controls and escape sequences, decoding UTF-8; keeps its
/// state between records, so anything may be split anywhere.
#[derive(Debug, Default)]
struct Decoder {
    state: State,
    /// The start of a UTF-8 character split across records.
    pending: [u8; 4],
    pending_len: usize,
}

impl Decoder {
    fn feed<S: Sink>(&mut self, mut bytes: &[u8], sink: &mut S, cx: &mut Cx<'_>) {
        while let Some((&b, rest)) = bytes.split_first() {
            if matches!(self.state, State::Ground) {
                bytes = self.ground(bytes, sink, cx);
            } else if self.sequence_byte(b, sink, cx) {
                bytes = rest;
            }
            // Otherwise the sequence was abandoned and the byte is read again as text.
        }
    }

    /// The stream ended: an unfinished character is an invalid one; an unfinished sequence is
    /// dropped.
    fn finish<S: Sink>(&mut self, sink: &mut S, cx: &mut Cx<'_>) {
        self.state = State::Ground;
        if self.pending_len > 0 {
            self.pending_len = 0;
            sink.text(REPLACEMENT, cx);
        }
    }

    /// Text up to the next control byte, which is consumed too. Returns the rest.
    fn ground<'b, S: Sink>(&mut self, bytes: &'b [u8], sink: &mut S, cx: &mut Cx<'_>) -> &'b [u8] {
        if self.pending_len > 0 {
            return self.complete_pending(bytes, sink, cx);
        }
        let end = bytes
            .iter()
            .position(|&b| b < 0x20 || b == DEL)
            .unwrap_or(bytes.len());
        let (run, rest) = bytes.split_at_checked(end).unwrap_or((bytes, &[]));
        if !run.is_empty() {
            self.text_run(run, rest.is_empty(), sink, cx);
        }
        let Some((&c, rest)) = rest.split_first() else {
            return rest;
        };
        if c == ESC {
            self.state = State::Escape;
        } else {
            sink.control(c, cx);
        }
        rest
    }

    /// A run of bytes without controls; `at_end`: it ends the record, so an incomplete
    /// character at its end may continue in the next one.
    fn text_run<S: Sink>(&mut self, run: &[u8], at_end: bool, sink: &mut S, cx: &mut Cx<'_>) {
        match std::str::from_utf8(run) {
            Ok(s) => printable(s, sink, cx),
            Err(_) => self.lossy_run(run, at_end, sink, cx),
        }
    }

    /// As `String::from_utf8_lossy` (one U+FFFD per maximal invalid sequence), except that an
    /// incomplete character at the end of the record is kept for the next one.
    fn lossy_run<S: Sink>(&mut self, run: &[u8], at_end: bool, sink: &mut S, cx: &mut Cx<'_>) {
        let mut chunks = run.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            printable(chunk.valid(), sink, cx);
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            if at_end && chunks.peek().is_none() && is_incomplete_utf8(invalid) {
                self.stash(invalid);
            } else {
                sink.text(REPLACEMENT, cx);
            }
        }
    }

    fn stash(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.pending.len());
        if let (Some(dst), Some(src)) = (self.pending.get_mut(..n), bytes.get(..n)) {
            dst.copy_from_slice(src);
            self.pending_len = n;
        }
    }

    /// Continues the character split across records. Returns the bytes after it; a byte that
    /// cannot continue it is left for the caller (the split character becomes U+FFFD).
    fn complete_pending<'b, S: Sink>(
        &mut self,
        bytes: &'b [u8],
        sink: &mut S,
        cx: &mut Cx<'_>,
    ) -> &'b [u8] {
        let mut rest = bytes;
        while let Some((&b, tail)) = rest.split_first() {
            let Some(slot) = self.pending.get_mut(self.pending_len) else {
                break;
            };
            *slot = b;
            self.pending_len += 1;
            let so_far = self.pending.get(..self.pending_len).unwrap_or_default();
            match std::str::from_utf8(so_far) {
                Ok(c) => {
                    printable(c, sink, cx);
                    self.pending_len = 0;
                    return tail;
                }
                Err(e) if e.error_len().is_none() => rest = tail,
                Err(_) => break,
            }
        }
        if rest.is_empty() {
            return rest;
        }
        // `rest[0]` broke the character (or, impossibly, 4 bytes were not enough): the start
        // is invalid, the breaking byte is read again on its own.
        self.pending_len = 0;
        sink.text(REPLACEMENT, cx);
        rest
    }

    /// One byte inside an escape sequence. Returns false if the sequence was abandoned and the
    /// byte must be read again as text.
    fn sequence_byte<S: Sink>(&mut self, b: u8, sink: &mut S, cx: &mut Cx<'_>) -> bool {
        match self.state {
            State::Osc | State::OscEscape | State::Str | State::StrEscape => {
                self.string_byte(b);
                return true;
            }
            State::Ground => return false,
            State::Escape | State::Intermediate | State::SingleShift | State::Csi(_) => {}
        }
        match b {
            ESC => self.state = State::Escape,
            CAN | SUB => self.state = State::Ground,
            // Terminals execute C0 controls met inside a sequence ("\n" still ends a line).
            0..=0x1f => sink.control(b, cx),
            DEL => {}
            // Not part of any sequence: a sequence cut short by text.
            0x80.. => {
                self.state = State::Ground;
                return false;
            }
            _ => self.sequence_printable(b, sink, cx),
        }
        true
    }

    fn sequence_printable<S: Sink>(&mut self, b: u8, sink: &mut S, cx: &mut Cx<'_>) {
        self.state = match self.state {
            State::Escape => match b {
                b'[' => State::Csi(CsiParams {
                    in_first: true,
                    ..CsiParams::default()
                }),
                b']' => State::Osc,
                b'P' | b'X' | b'^' | b'_' => State::Str,
                b'N' | b'O' => State::SingleShift,
                0x20..=0x2f => State::Intermediate,
                _ => {
                    sink.esc(b, cx);
                    State::Ground
                }
            },
            State::Intermediate if (0x20..=0x2f).contains(&b) => State::Intermediate,
            State::Csi(mut params) => {
                if (0x40..=0x7e).contains(&b) {
                    sink.csi(params, b, cx);
                    State::Ground
                } else {
                    csi_parameter_byte(&mut params, b);
                    State::Csi(params)
                }
            }
            // The final byte of ESC-intermediate and single-shift sequences.
            _ => State::Ground,
        };
    }

    /// A byte of an OSC/DCS/SOS/PM/APC string: skipped until its terminator, as a terminal
    /// does (the trail keeps the bytes for the replay).
    fn string_byte(&mut self, b: u8) {
        self.state = match (self.state, b) {
            (_, CAN | SUB) => State::Ground,
            (State::Osc | State::OscEscape, BEL) => State::Ground,
            (State::Osc | State::OscEscape, ESC) => State::OscEscape,
            (State::Str | State::StrEscape, ESC) => State::StrEscape,
            (State::OscEscape | State::StrEscape, b'\\') => State::Ground,
            (State::Osc | State::OscEscape, _) => State::Osc,
            (State::Str | State::StrEscape, _) => State::Str,
            (other, _) => other,
        };
    }
}

/// Passes decoded text on without C1 controls (U+0080..U+009F): they print nothing, and a
/// control character has no place in the index. The check is one fast pass, skipped by the
/// common all-ASCII text.
fn printable<S: Sink>(s: &str, sink: &mut S, cx: &mut Cx<'_>) {
    if s.is_ascii() {
        if !s.is_empty() {
            sink.text(s, cx);
        }
        return;
    }
    for piece in s.split(|c: char| c.is_control()) {
        if !piece.is_empty() {
            sink.text(piece, cx);
        }
    }
}

fn csi_parameter_byte(params: &mut CsiParams, b: u8) {
    match b {
        b'0'..=b'9' if params.in_first => {
            params.first = params
                .first
                .saturating_mul(10)
                .saturating_add(u32::from(b - b'0'));
        }
        b';' | b':' => params.in_first = false,
        // Private markers (`?`, `>`, ...) and intermediates.
        0x3c..=0x3f | 0x20..=0x2f => params.private = true,
        _ => {}
    }
}

/// `bytes` is the start of a valid UTF-8 character, cut short.
fn is_incomplete_utf8(bytes: &[u8]) -> bool {
    matches!(std::str::from_utf8(bytes), Err(e) if e.error_len().is_none())
}

/// Rebuilds screen lines. Rules (not an emulator; chosen for shells and line output):
/// - `\n` ends the line; `\r\n` ends it once.
/// - A lone `\r` followed by more text means the line is being overwritten (progress bars,
///   readline redrawing): the line so far is ended and the text starts a new one.
/// - Backspace removes the last character (terminals move the cursor back and the next
///   character overwrites; `\b \b` erases); Tab becomes a space; other controls are dropped.
/// - A cursor move to another row (CSI `A B E F H f d`, `ESC D E M`) ends the line: full-screen
///   programs position the cursor instead of printing newlines, and words on different rows
///   must not be glued together.
/// - Other escape sequences are dropped.
#[derive(Debug, Default)]
struct Screen {
    line: Line,
    /// A `\r` was seen: the next text overwrites the line, the next `\n` just ends it.
    cr_pending: bool,
}

impl Screen {
    fn end_line(&mut self, out: &mut Vec<TextChunk>) {
        self.cr_pending = false;
        self.line.end(TextKind::Screen, out);
    }
}

impl Sink for Screen {
    fn text(&mut self, s: &str, cx: &mut Cx<'_>) {
        if self.cr_pending {
            self.end_line(cx.out);
        }
        fill(&mut self.line, s, TextKind::Screen, cx);
    }

    fn control(&mut self, byte: u8, cx: &mut Cx<'_>) {
        match byte {
            b'\n' => self.end_line(cx.out),
            b'\r' => self.cr_pending = true,
            // After `\r` the cursor is in the first column: backspace does nothing.
            BS if !self.cr_pending => self.line.pop(),
            b'\t' => self.text(" ", cx),
            _ => {}
        }
    }

    fn csi(&mut self, params: CsiParams, final_byte: u8, cx: &mut Cx<'_>) {
        if !params.private && matches!(final_byte, b'A' | b'B' | b'E' | b'F' | b'H' | b'f' | b'd') {
            self.end_line(cx.out);
        }
    }

    fn esc(&mut self, final_byte: u8, cx: &mut Cx<'_>) {
        // IND, NEL, RI: the cursor goes to another row.
        if matches!(final_byte, b'D' | b'E' | b'M') {
            self.end_line(cx.out);
        }
    }
}

/// Assembles keystrokes into command lines: printable characters append; DEL and backspace
/// remove the last character; Ctrl-U clears the line; Ctrl-W deletes the last word; Ctrl-C
/// drops the line; `\r` or `\n` emits it. Escape sequences (arrow and function keys, Alt
/// combinations, bracketed paste markers) are dropped without breaking the line; pasted text
/// is kept, a pasted Tab as a space (a typed Tab asks for completion and adds nothing we can
/// know).
#[derive(Debug, Default)]
struct Input {
    line: Line,
    /// Between `ESC [200~` and `ESC [201~`.
    in_paste: bool,
    /// The line is being typed at a password prompt: it is dropped, never emitted.
    secret: bool,
    /// The screen showed a password prompt when the current record arrived.
    at_prompt: bool,
}

impl Input {
    /// Looks at the screen's unfinished line before a record of keystrokes. Checking at every
    /// record (each keystroke, usually) also catches a password typed ahead of its prompt and
    /// entered after it appeared.
    fn begin_record(&mut self, screen_line: &str) {
        self.at_prompt = looks_like_secret_prompt(screen_line);
        if self.line.text.is_empty() {
            self.secret = self.at_prompt;
        } else if self.at_prompt && !is_echoed(&self.line.text, screen_line) {
            // Echoed text is not a password: the user typed "echo password:" at a shell, and
            // the screen line ends with it.
            self.secret = true;
        }
    }

    fn end_line(&mut self, out: &mut Vec<TextChunk>) {
        if self.secret {
            self.line.clear();
        } else {
            self.line.end(TextKind::Command, out);
        }
        self.secret = self.at_prompt;
    }

    fn discard(&mut self) {
        self.line.clear();
        self.secret = self.at_prompt;
    }
}

impl Sink for Input {
    fn text(&mut self, s: &str, cx: &mut Cx<'_>) {
        let mut rest = s;
        while !rest.is_empty() {
            rest = self.line.append(rest, cx.at);
            if !rest.is_empty() {
                // At the cap; the next line is as secret as this one.
                if self.secret {
                    self.line.clear();
                } else {
                    self.line.end(TextKind::Command, cx.out);
                }
            }
        }
    }

    fn control(&mut self, byte: u8, cx: &mut Cx<'_>) {
        match byte {
            b'\r' | b'\n' => self.end_line(cx.out),
            DEL | BS => self.line.pop(),
            CTRL_U => self.line.clear(),
            CTRL_W => self.line.delete_word(),
            CTRL_C => self.discard(),
            b'\t' if self.in_paste => self.text(" ", cx),
            _ => {}
        }
    }

    fn csi(&mut self, params: CsiParams, final_byte: u8, _cx: &mut Cx<'_>) {
        if !params.private && final_byte == b'~' {
            match params.first {
                200 => self.in_paste = true,
                201 => self.in_paste = false,
                _ => {}
            }
        }
    }

    fn esc(&mut self, _final_byte: u8, _cx: &mut Cx<'_>) {}
}

/// Words that make a prompt ending in a colon a secret one, matched ignoring ASCII case
/// anywhere in the line's tail. "pass" covers password, passphrase, passcode, Passwort,
/// "mot de passe"; the others cover PINs, one-time codes and a few languages. Erring towards
/// "secret" only costs the index a typed line, which the screen still shows if it was echoed.
const SECRET_WORDS: &[&str] = &[
    "pass",
    "pin",
    "otp",
    "one-time",
    "code",
    "token",
    "secret",
    "kennwort",
    "contrase",
    "senha",
    "wachtwoord",
    "lösenord",
    "hasło",
    "пароль",
    "Пароль",
    "密码",
    "密碼",
    "パスワード",
    "암호",
    "비밀번호",
];

/// Whether the screen's unfinished line looks like a password prompt ("[sudo] password for
/// alice: ", "Enter passphrase for key '...': ", "Verification code: ").
///
/// The colon is required so that shell prompts (`$`, `#`, `%`, `>`) in a directory named
/// "passwords" do not hide every command typed there. Limits: a prompt without a colon, or
/// drawn by a full-screen program (pinentry-curses) is not recognised; a user who makes their
/// shell prompt look like a password prompt keeps their commands out of the Command chunks,
/// but the echoed commands are still in the Screen text and the trail.
fn looks_like_secret_prompt(line: &str) -> bool {
    let line = line.trim_end();
    if !(line.ends_with(':') || line.ends_with('：')) {
        return false;
    }
    let bytes = line.as_bytes();
    let tail = bytes
        .get(bytes.len().saturating_sub(PROMPT_TAIL)..)
        .unwrap_or(bytes);
    SECRET_WORDS
        .iter()
        .any(|word| contains_ignore_ascii_case(tail, word.as_bytes()))
}

fn contains_ignore_ascii_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

/// The typed text is what the screen line ends with: the terminal echoes it, so it is not
/// being typed blind at a password prompt.
fn is_echoed(typed: &str, screen_line: &str) -> bool {
    let typed = typed.trim_end();
    !typed.is_empty() && screen_line.trim_end().ends_with(typed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use serde_json::json;

    /// Feeds records to an extractor and collects what it emits.
    struct Rig {
        ex: TextExtractor,
        out: Vec<TextChunk>,
    }

    impl Rig {
        fn new() -> Self {
            Rig {
                ex: TextExtractor::new(),
                out: Vec::new(),
            }
        }

        /// A rig with a terminal on channel 0.
        fn terminal() -> Self {
            let mut rig = Rig::new();
            rig.pty(0, 0);
            rig
        }

        fn push(&mut self, at: u64, record: Record) {
            self.ex.push(at, &record, &mut self.out);
        }

        fn request(&mut self, at: u64, channel: u32, request: &str, details: Value) {
            self.push(
                at,
                Record::ChannelRequest {
                    channel,
                    request: request.into(),
                    details,
                },
            );
        }

        fn pty(&mut self, at: u64, channel: u32) {
            let details =
                json!({"term": "xterm", "cols": 80, "rows": 24, "px_width": 0, "px_height": 0});
            self.request(at, channel, "pty-req", details);
            self.request(at, channel, "shell", json!({}));
        }

        fn data(
            &mut self,
            at: u64,
            channel: u32,
            direction: Direction,
            extended: bool,
            bytes: &[u8],
        ) {
            self.push(
                at,
                Record::Data {
                    channel,
                    direction,
                    extended,
                    bytes: Bytes::copy_from_slice(bytes),
                },
            );
        }

        fn screen(&mut self, at: u64, bytes: &[u8]) {
            self.data(at, 0, Direction::ServerToClient, false, bytes);
        }

        fn keys(&mut self, at: u64, bytes: &[u8]) {
            self.data(at, 0, Direction::ClientToServer, false, bytes);
        }

        /// Each byte typed as a record of its own, one microsecond apart, as a user types.
        fn type_slowly(&mut self, at: u64, bytes: &[u8]) {
            for (i, b) in bytes.iter().enumerate() {
                self.keys(at + i as u64, std::slice::from_ref(b));
            }
        }

        fn finish(&mut self) {
            self.ex.finish(&mut self.out);
        }

        fn texts(&self, kind: TextKind) -> Vec<&str> {
            self.out
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| c.text.as_str())
                .collect()
        }

        fn screen_texts(&self) -> Vec<&str> {
            self.texts(TextKind::Screen)
        }

        fn commands(&self) -> Vec<&str> {
            self.texts(TextKind::Command)
        }

        fn stamped(&self) -> Vec<(u64, TextKind, &str)> {
            self.out
                .iter()
                .map(|c| (c.at, c.kind, c.text.as_str()))
                .collect()
        }
    }

    #[test]
    fn colors_titles_and_other_sequences_are_stripped() {
        let mut rig = Rig::terminal();
        rig.screen(
            1,
            b"\x1b]0;user@host: ~\x07\x1b[01;32muser@host\x1b[00m:\x1b[01;34m~\x1b[00m$ ls\r\n",
        );
        rig.screen(2, b"\x1b[0m\x1b[01;34mbin\x1b[0m  notes.txt\x1b[K\r\n");
        rig.screen(
            3,
            b"\x1b[?25l\x1b(B\x1b=\x1b>\x1b[38;5;208mwarm\x1b[m\x1b[?25h\n",
        );
        rig.screen(
            4,
            b"\x1bPtmux;\x1b\x1b]0;t\x07\x1b\\\x1b_apc\x07still apc\x1b\\shown\n",
        );
        assert_eq!(
            rig.screen_texts(),
            ["user@host:~$ ls", "bin  notes.txt", "warm", "shown"]
        );
    }

    #[test]
    fn cursor_moves_to_another_row_end_the_line() {
        let mut rig = Rig::terminal();
        // As top or vim draw: rows positioned, never a newline; moves on the row (C, G) and
        // erasing (K, J) do not split.
        rig.screen(
            1,
            b"\x1b[H\x1b[2Jtop - 10:00\x1b[2;1HTasks: 90\x1b[5Cok\x1b[3d\x1b[1Grow three\x1b[Aup\x1bMreverse",
        );
        rig.finish();
        assert_eq!(
            rig.screen_texts(),
            ["top - 10:00", "Tasks: 90ok", "row three", "up", "reverse"]
        );
    }

    #[test]
    fn sequences_split_across_records_are_still_stripped() {
        let mut rig = Rig::terminal();
        let parts: [&[u8]; 7] = [
            b"a\x1b",
            b"[01;3",
            b"4mdir\x1b[0",
            b"m b\x1b]0;ti",
            b"tle\x1b",
            b"\\ c\x1bP1$r\x1b",
            b"\\d\x1b(\x1bOA\n",
        ];
        for (i, part) in parts.iter().enumerate() {
            rig.screen(i as u64, part);
        }
        assert_eq!(rig.screen_texts(), ["adir b cd"]);
    }

    #[test]
    fn utf8_split_across_records_and_invalid_bytes() {
        let mut rig = Rig::terminal();
        rig.screen(1, b"caf\xc3");
        rig.screen(2, b"\xa9 ok\n");
        let crab = "🦀".as_bytes();
        for (i, b) in crab.iter().enumerate() {
            rig.screen(10 + i as u64, std::slice::from_ref(b));
        }
        rig.screen(20, b"!\n");
        // Invalid byte; a character cut by ASCII; one cut by an escape; one cut by the end.
        rig.screen(30, b"a\xffb \xe2\x82z \xe2\x1b[0mq\n");
        // C1 controls encoded as UTF-8 (NEL, CSI) print nothing.
        rig.screen(35, "x\u{85}y\u{9b}z\n".as_bytes());
        rig.screen(40, b"end\xe2\x82");
        rig.finish();
        assert_eq!(
            rig.screen_texts(),
            [
                "café ok",
                "🦀!",
                "a\u{FFFD}b \u{FFFD}z \u{FFFD}q",
                "xyz",
                "end\u{FFFD}"
            ]
        );
    }

    #[test]
    fn crlf_ends_a_line_once_and_a_lone_cr_overwrites_it() {
        let mut rig = Rig::terminal();
        rig.screen(1, b"one\r\ntwo\n\nthree\r\r\nfour\r");
        rig.screen(2, b"\nfive\n");
        rig.screen(3, b"10%\r50%\r\x1b[K100%\r\n");
        assert_eq!(
            rig.screen_texts(),
            ["one", "two", "three", "four", "five", "10%", "50%", "100%"]
        );
    }

    #[test]
    fn backspace_tab_and_controls_on_screen() {
        let mut rig = Rig::terminal();
        // readline erases with "\b \b"; a bare backspace is overwritten by the next character.
        rig.screen(1, b"lsx\x08 \x08 -l\r\n");
        rig.screen(2, b"abc\x08\x08d\x07\n");
        rig.screen(3, b"a\tb  \t\n");
        rig.screen(4, b"x\r\x08y\n");
        assert_eq!(rig.screen_texts(), ["ls -l", "ad", "a b", "x", "y"]);
    }

    #[test]
    fn stderr_on_a_terminal_is_screen_text() {
        let mut rig = Rig::terminal();
        rig.data(
            5,
            0,
            Direction::ServerToClient,
            true,
            b"bash: nope: command not found\r\n",
        );
        assert_eq!(
            rig.stamped(),
            [(5, TextKind::Screen, "bash: nope: command not found")]
        );
    }

    #[test]
    fn typed_line_editing() {
        let mut rig = Rig::terminal();
        rig.type_slowly(100, b"lss\x7f -l\r");
        rig.type_slowly(200, b"cat /etc/shadow\x15whoami\r");
        rig.type_slowly(300, b"git commit -m wip  \x17\"fix\"\r");
        rig.type_slowly(400, b"rm -rf /\x03");
        rig.type_slowly(500, b"\r");
        rig.type_slowly(600, b"uptime\x08\x08\x08\x08\x08\x08\x08\x08date\n");
        assert_eq!(
            rig.commands(),
            ["ls -l", "whoami", "git commit -m \"fix\"", "date"]
        );
    }

    #[test]
    fn arrow_keys_and_paste_markers_are_dropped_paste_kept() {
        let mut rig = Rig::terminal();
        // Up arrow (history recall, not reconstructed), left, application-mode right, Alt-b.
        rig.type_slowly(1, b"ls\x1b[A\x1b[D\x1bOC\x1bb -a\r");
        rig.keys(50, b"echo \x1b[200~pasted\ttext\x1b[201~\t!\r");
        rig.keys(60, b"\x1b[200~line one\rline two\x1b[201~\r");
        assert_eq!(
            rig.commands(),
            ["ls -a", "echo pasted text!", "line one", "line two"]
        );
    }

    #[test]
    fn exec_command_is_emitted_for_any_channel() {
        let mut rig = Rig::new();
        rig.request(7, 3, "exec", json!({"command": "scp -t /tmp/upload"}));
        // scp protocol data on the channel: not text.
        rig.data(
            8,
            3,
            Direction::ClientToServer,
            false,
            b"C0644 5 secret.txt\nhello\0",
        );
        rig.data(9, 3, Direction::ServerToClient, false, b"\0\0");
        rig.pty(10, 4);
        rig.request(
            10,
            4,
            "exec",
            json!({"command": "tail -f /var/log/syslog\n\tgrep x\x1b"}),
        );
        rig.finish();
        assert_eq!(
            rig.stamped(),
            [
                (7, TextKind::Command, "scp -t /tmp/upload"),
                (10, TextKind::Command, "tail -f /var/log/syslog"),
                (10, TextKind::Command, " grep x"),
            ]
        );
    }

    #[test]
    fn data_on_channels_without_a_pty_is_ignored() {
        let mut rig = Rig::new();
        rig.push(
            1,
            Record::ChannelOpen {
                channel: 1,
                kind: "session".into(),
                meta: json!({}),
            },
        );
        rig.request(2, 1, "subsystem", json!({"name": "sftp"}));
        rig.data(
            3,
            1,
            Direction::ClientToServer,
            false,
            b"\0\0\0\x05\x01\0\0\0\x03readable\n",
        );
        rig.data(
            4,
            1,
            Direction::ServerToClient,
            false,
            b"file contents\nmore\n",
        );
        // Data before a pty-req is not a terminal's either.
        rig.data(5, 2, Direction::ServerToClient, false, b"early\n");
        rig.finish();
        assert!(rig.out.is_empty(), "{:?}", rig.out);
    }

    #[test]
    fn channel_close_flushes_and_forgets_the_channel() {
        let mut rig = Rig::terminal();
        rig.pty(0, 1);
        rig.screen(10, b"alice@host:~$ ");
        rig.keys(20, b"exit");
        rig.data(25, 1, Direction::ServerToClient, false, b"other channel");
        rig.push(30, Record::ChannelClose { channel: 0 });
        assert_eq!(
            rig.stamped(),
            [
                (10, TextKind::Screen, "alice@host:~$"),
                (20, TextKind::Command, "exit"),
            ]
        );
        // The channel is no terminal any more: its data is not text.
        rig.screen(40, b"after close\n");
        rig.finish();
        assert_eq!(rig.screen_texts(), ["alice@host:~$", "other channel"]);
    }

    #[test]
    fn a_reopened_channel_id_starts_afresh() {
        let mut rig = Rig::terminal();
        rig.screen(10, b"half a line");
        rig.push(
            20,
            Record::ChannelOpen {
                channel: 0,
                kind: "session".into(),
                meta: json!({}),
            },
        );
        rig.screen(30, b"not a terminal\n");
        assert_eq!(rig.stamped(), [(10, TextKind::Screen, "half a line")]);
    }

    #[test]
    fn flush_idle_emits_a_pending_prompt_only_after_the_idle_time() {
        let mut rig = Rig::terminal();
        rig.screen(1_000, b"alice@host:~$ ");
        rig.ex.flush_idle(1_500, 1_000, &mut rig.out);
        assert!(rig.out.is_empty(), "flushed too early: {:?}", rig.out);
        rig.ex.flush_idle(2_000, 1_000, &mut rig.out);
        assert_eq!(rig.stamped(), [(1_000, TextKind::Screen, "alice@host:~$")]);
        // Flushed once only.
        rig.ex.flush_idle(9_000, 1_000, &mut rig.out);
        assert_eq!(rig.out.len(), 1);
        // The echo continues the same line: only the new part is emitted.
        rig.keys(3_000, b"ls\r");
        rig.screen(3_100, b"ls\r\nCargo.toml\r\n");
        assert_eq!(
            rig.stamped(),
            [
                (1_000, TextKind::Screen, "alice@host:~$"),
                (3_000, TextKind::Command, "ls"),
                (3_100, TextKind::Screen, "ls"),
                (3_100, TextKind::Screen, "Cargo.toml"),
            ]
        );
    }

    #[test]
    fn flush_idle_leaves_typed_lines_alone() {
        let mut rig = Rig::terminal();
        rig.keys(10, b"rm -rf /tmp/x");
        rig.ex.flush_idle(10_000_000, 1_000, &mut rig.out);
        assert!(rig.out.is_empty());
        rig.keys(20, b"\x03");
        rig.finish();
        assert!(
            rig.out.is_empty(),
            "a cancelled line was indexed: {:?}",
            rig.out
        );
    }

    #[test]
    fn at_is_the_time_of_the_first_byte() {
        let mut rig = Rig::terminal();
        rig.screen(10, b"\x1b[1m");
        rig.screen(11, b"hel");
        rig.screen(20, b"lo\nwor");
        rig.screen(30, b"ld\n");
        rig.keys(40, b"ec");
        rig.keys(41, b"ho hi");
        rig.keys(42, b"\r");
        // Erased back to nothing: the line starts again with the next character.
        rig.keys(50, b"x\x7f");
        rig.keys(51, b"y\r");
        assert_eq!(
            rig.stamped(),
            [
                (11, TextKind::Screen, "hello"),
                (20, TextKind::Screen, "world"),
                (40, TextKind::Command, "echo hi"),
                (51, TextKind::Command, "y"),
            ]
        );
    }

    #[test]
    fn password_typed_at_a_prompt_is_never_emitted() {
        let mut rig = Rig::terminal();
        rig.screen(1, b"alice@host:~$ ");
        rig.type_slowly(10, b"sudo -s");
        rig.screen(17, b"sudo -s");
        rig.keys(18, b"\r");
        rig.screen(19, b"\r\n[sudo] password for alice: ");
        rig.type_slowly(30, b"hunter2\r");
        rig.screen(40, b"\r\nroot@host:~# ");
        rig.type_slowly(50, b"whoami\r");
        rig.screen(60, b"whoami\r\nroot\r\n");
        rig.finish();
        assert!(
            rig.out.iter().all(|c| !c.text.contains("hunter2")),
            "password indexed: {:?}",
            rig.out
        );
        assert_eq!(rig.commands(), ["sudo -s", "whoami"]);
        assert!(rig.screen_texts().contains(&"[sudo] password for alice:"));
    }

    #[test]
    fn password_typed_ahead_of_its_prompt_is_not_emitted() {
        let mut rig = Rig::terminal();
        rig.keys(1, b"ssh-add\r");
        rig.screen(2, b"ssh-add\r\n");
        // Typed before the prompt arrived, entered after it.
        rig.type_slowly(3, b"correct horse");
        rig.screen(20, b"Enter passphrase for /home/alice/.ssh/id_ed25519: ");
        rig.keys(21, b"\r");
        // And one typed but never entered before the session ended.
        rig.screen(
            30,
            b"\r\nBad passphrase, try again for /home/alice/.ssh/id_ed25519: ",
        );
        rig.keys(31, b"battery staple");
        rig.finish();
        assert!(
            rig.out
                .iter()
                .all(|c| !c.text.contains("horse") && !c.text.contains("staple")),
            "passphrase indexed: {:?}",
            rig.out
        );
        assert_eq!(rig.commands(), ["ssh-add"]);
    }

    #[test]
    fn echoed_text_ending_like_a_prompt_is_still_a_command() {
        let mut rig = Rig::terminal();
        rig.screen(1, b"$ ");
        for (i, b) in b"echo password:".iter().enumerate() {
            rig.keys(10 + i as u64, std::slice::from_ref(b));
            rig.screen(10 + i as u64, std::slice::from_ref(b));
        }
        rig.keys(30, b"\r");
        assert_eq!(rig.commands(), ["echo password:"]);
    }

    #[test]
    fn secret_prompts_are_recognised() {
        for prompt in [
            "[sudo] password for alice: ",
            "Password:",
            "alice@db-01's password: ",
            "Enter passphrase for key '/home/alice/.ssh/id_rsa': ",
            "Password for 'https://alice@git.example.com': ",
            "Verification code: ",
            "[sudo] Passwort für alice: ",
            "[sudo] пароль для alice: ",
        ] {
            assert!(looks_like_secret_prompt(prompt), "{prompt}");
        }
        for line in [
            "alice@host:~/passwords$ ",
            "Are you sure you want to continue connecting (yes/no/[fingerprint])? ",
            "login:",
            "",
        ] {
            assert!(!looks_like_secret_prompt(line), "{line}");
        }
    }

    #[test]
    fn lines_are_capped() {
        let mut rig = Rig::terminal();
        let mut long = vec![b'x'; 5000];
        long.push(b'\n');
        rig.screen(1, &long);
        rig.screen(2, "é".repeat(3000).as_bytes());
        rig.screen(3, b"\n");
        rig.keys(4, &[b'y'; 2049]);
        rig.keys(5, b"\r");
        let lens: Vec<(TextKind, usize)> = rig
            .out
            .iter()
            .map(|c| (c.kind, c.text.chars().count()))
            .collect();
        assert_eq!(
            lens,
            [
                (TextKind::Screen, 2048),
                (TextKind::Screen, 2048),
                (TextKind::Screen, 904),
                (TextKind::Screen, 2048),
                (TextKind::Screen, 952),
                (TextKind::Command, 2048),
                (TextKind::Command, 1),
            ]
        );
        assert!(rig.out.iter().take(2).all(|c| c.at == 1));
    }

    #[test]
    fn finish_emits_what_is_pending() {
        let mut rig = Rig::terminal();
        rig.screen(5, b"Connection to db closed by remote host.");
        rig.keys(6, b"uptime");
        assert!(rig.out.is_empty());
        rig.finish();
        assert_eq!(
            rig.stamped(),
            [
                (
                    5,
                    TextKind::Screen,
                    "Connection to db closed by remote host."
                ),
                (6, TextKind::Command, "uptime"),
            ]
        );
    }

    #[test]
    fn any_bytes_give_clean_bounded_lines() {
        // Random bytes biased towards the interesting ones, cut into random records.
        const ALPHABET: &[u8] = b"\x1b\x1b[]P\\\x07\r\n\x08\x7f\x03\x15\x17\t;0123456789~Ab c:\xc3\xa9\xe2\x82\xac\xf0\x9f\xff\x80";
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut rig = Rig::terminal();
        for at in 0..20_000_u64 {
            let len = (next() % 40) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    let r = next();
                    if r % 3 == 0 {
                        (r >> 8) as u8
                    } else {
                        ALPHABET[(r >> 8) as usize % ALPHABET.len()]
                    }
                })
                .collect();
            if next() % 4 == 0 {
                rig.keys(at, &bytes);
            } else {
                rig.screen(at, &bytes);
            }
            if at % 1000 == 0 {
                rig.ex.flush_idle(at, 500, &mut rig.out);
            }
        }
        rig.finish();
        assert!(rig.out.len() > 100, "only {} chunks", rig.out.len());
        for chunk in &rig.out {
            assert!(!chunk.text.trim().is_empty(), "{chunk:?}");
            assert_eq!(chunk.text.trim_end(), chunk.text, "{chunk:?}");
            assert!(chunk.text.chars().count() <= MAX_LINE_CHARS);
            assert!(!chunk.text.chars().any(char::is_control), "{chunk:?}");
        }
        // Each kind comes in time order (its lines follow one another).
        for kind in [TextKind::Screen, TextKind::Command] {
            let times: Vec<u64> = rig
                .out
                .iter()
                .filter(|c| c.kind == kind)
                .map(|c| c.at)
                .collect();
            assert!(times.is_sorted(), "{kind:?} out of order");
        }
    }

    /// Throughput on typical terminal output. Run with
    /// `cargo test --release -p custos-trail text::tests::throughput -- --ignored --nocapture`;
    /// the target is over 200 MB/s on one core.
    #[test]
    #[ignore = "measurement; run in release with --ignored --nocapture"]
    fn throughput() {
        let lines: [&[u8]; 6] = [
            b"\x1b]0;alice@web-01: ~/src\x07\x1b[01;32malice@web-01\x1b[00m:\x1b[01;34m~/src\x1b[00m$ ls -l --color\r\n",
            b"drwxr-xr-x  2 alice alice  4096 Mar  3 10:12 \x1b[01;34mbuild\x1b[0m\r\n",
            b"-rw-r--r--  1 alice alice 18342 Mar  3 10:12 Cargo.lock\r\n",
            b"2026-03-03T10:12:01.331Z INFO  custos_api: request handled path=/api/v1/sessions status=200 took=3ms\r\n",
            b"   Compiling custos-trail v0.1.0 (/home/alice/src/custos/crates/custos-trail)\r\n",
            "  ✓ résumé of 12 tests — all passed\r\n".as_bytes(),
        ];
        let mut block = Vec::new();
        let mut lines_per_block = 0;
        while block.len() < 60 * 1024 {
            for line in lines {
                block.extend_from_slice(line);
                lines_per_block += 1;
            }
        }
        let total: usize = 64 << 20;
        let blocks = total.div_ceil(block.len());
        let stream = Bytes::from(block.repeat(blocks));
        // Records of 16 KiB, cut anywhere (inside sequences and characters too).
        let records: Vec<Record> = (0..stream.len())
            .step_by(16 * 1024)
            .map(|start| Record::Data {
                channel: 0,
                direction: Direction::ServerToClient,
                extended: false,
                bytes: stream.slice(start..(start + 16 * 1024).min(stream.len())),
            })
            .collect();

        let mut ex = TextExtractor::new();
        let mut out = Vec::new();
        ex.push(
            0,
            &Record::ChannelRequest {
                channel: 0,
                request: "pty-req".into(),
                details: json!({}),
            },
            &mut out,
        );
        let mut chunks = 0;
        let start = std::time::Instant::now();
        for (i, record) in records.iter().enumerate() {
            ex.push(i as u64, record, &mut out);
            chunks += out.len();
            out.clear();
        }
        ex.finish(&mut out);
        chunks += out.len();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "text extraction: {} MiB in {secs:.3} s = {:.0} MB/s, {chunks} lines",
            stream.len() >> 20,
            stream.len() as f64 / secs / 1e6
        );
        assert_eq!(chunks, lines_per_block * blocks);
    }
}
