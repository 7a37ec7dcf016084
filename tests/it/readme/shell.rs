//! Reads README.md the way a reader copies from it: fenced `sh` blocks split into commands
//! (quotes may span lines, `\` continues a line, `#` starts a comment), each followed by the
//! output block README shows for it.

/// One command of a `sh` block, with the words a shell would pass and its trailing comment.
#[derive(Debug, Clone)]
pub struct Command {
    pub words: Vec<String>,
    pub comment: Option<String>,
}

/// A `grpcurl` step: the command and the output README shows right after its block (for the
/// block's last command only).
#[derive(Debug, Clone)]
pub struct Step {
    pub command: Command,
    pub expected: Option<String>,
    /// The README line the command starts on (for failure messages).
    pub line: usize,
}

/// Fenced blocks: (info string, body, first line number).
fn blocks(text: &str) -> Vec<(String, String, usize)> {
    let mut out = Vec::new();
    let mut cur: Option<(String, String, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut cur, line.strip_prefix("```")) {
            (None, Some(info)) => cur = Some((info.trim().to_owned(), String::new(), i + 2)),
            (Some(_), Some(_)) => out.extend(cur.take()),
            (Some((_, body, _)), None) => {
                body.push_str(line);
                body.push('\n');
            }
            (None, None) => {}
        }
    }
    out
}

/// Splits a `sh` block into commands like a POSIX shell would (enough of it for README).
pub fn commands(block: &str) -> Vec<Command> {
    let mut out = Vec::new();
    let (mut words, mut word, mut in_word) = (Vec::<String>::new(), String::new(), false);
    let mut chars = block.chars().peekable();
    let mut comment = None;
    let finish = |words: &mut Vec<String>, comment: &mut Option<String>, out: &mut Vec<Command>| {
        if !words.is_empty() {
            out.push(Command {
                words: std::mem::take(words),
                comment: comment.take(),
            });
        }
        *comment = None;
    };
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            '#' if !in_word => {
                let mut text = String::new();
                while let Some(&n) = chars.peek() {
                    if n == '\n' {
                        break;
                    }
                    text.push(n);
                    chars.next();
                }
                comment = Some(text.trim().to_owned());
            }
            ' ' | '\t' | '\n' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                if c == '\n' {
                    finish(&mut words, &mut comment, &mut out);
                }
            }
            _ => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    finish(&mut words, &mut comment, &mut out);
    out
}

/// Every `grpcurl` command of README up to (not including) the section `stop_at`, in order.
pub fn grpcurl_steps(readme: &str, stop_at: &str) -> Vec<Step> {
    let end = readme.find(stop_at).unwrap_or(readme.len());
    let bs = blocks(&readme[..end]);
    let mut steps = Vec::new();
    for (i, (info, body, line)) in bs.iter().enumerate() {
        if info != "sh" {
            continue;
        }
        let expected = bs
            .get(i + 1)
            .filter(|(info, _, _)| info != "sh")
            .map(|(_, body, _)| body.clone());
        let cmds: Vec<Command> = commands(body)
            .into_iter()
            .filter(|c| c.words.first().map(String::as_str) == Some("grpcurl"))
            .collect();
        let n = cmds.len();
        for (j, command) in cmds.into_iter().enumerate() {
            steps.push(Step {
                command,
                expected: if j + 1 == n { expected.clone() } else { None },
                line: *line,
            });
        }
    }
    steps
}

/// `"key": value` pairs (string, number or boolean values) in README's output excerpts, which
/// are JSON with `...`/`…` elisions and so cannot be parsed as JSON.
pub fn pairs(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'"' {
            i += 1;
            continue;
        }
        let Some((key, after)) = string_at(text, i) else {
            break;
        };
        let mut j = after;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j >= b.len() || b[j] != b':' {
            i = after;
            continue;
        }
        j += 1;
        while j < b.len() && b[j] == b' ' {
            j += 1;
        }
        if j < b.len() && b[j] == b'"' {
            if let Some((v, after)) = string_at(text, j) {
                out.push((key, v));
                i = after;
                continue;
            }
        }
        let start = j;
        while j < b.len() && (b[j].is_ascii_alphanumeric() || b[j] == b'-' || b[j] == b'.') {
            j += 1;
        }
        if j > start {
            out.push((key, text[start..j].to_owned()));
        }
        i = j.max(after);
    }
    out
}

/// The JSON string starting at byte `i` (a `"`), unescaped, and the index after it.
fn string_at(text: &str, i: usize) -> Option<(String, usize)> {
    let mut s = String::new();
    let mut it = text[i + 1..].char_indices();
    while let Some((k, c)) = it.next() {
        match c {
            '"' => return Some((s, i + 1 + k + 1)),
            '\\' => {
                let (_, e) = it.next()?;
                s.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
            }
            c => s.push(c),
        }
    }
    None
}

#[test]
fn splits_commands_like_a_shell() {
    let block = "grpcurl -plaintext -d '{\"a\":\n  1}' \\\n  host:1 S/M\n\ngrpcurl x  # -> k v\n";
    let c = commands(block);
    assert_eq!(c.len(), 2);
    assert_eq!(
        c[0].words,
        [
            "grpcurl",
            "-plaintext",
            "-d",
            "{\"a\":\n  1}",
            "host:1",
            "S/M"
        ]
    );
    assert_eq!(c[1].comment.as_deref(), Some("-> k v"));
    assert_eq!(
        pairs("{ \"a\": \"x\\\"y\", \"n\": 3, \"b\": true, ... \"s\": \"…\" }"),
        [
            ("a".to_owned(), "x\"y".to_owned()),
            ("n".to_owned(), "3".to_owned()),
            ("b".to_owned(), "true".to_owned()),
            ("s".to_owned(), "…".to_owned())
        ]
    );
}
