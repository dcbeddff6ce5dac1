//! A Rust lexer just good enough to find paths: it drops comments and literals.

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tok {
    Ident(String),
    /// `::`
    Path,
    Punct(char),
}

/// Rust tokens without comments, string, byte and char literals, lifetimes or numbers.
pub fn lex(src: &str) -> Vec<(Tok, usize)> {
    let c: Vec<char> = src.chars().collect();
    let mut out = Vec::new();
    let (mut i, mut line) = (0, 1);
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    while i < c.len() {
        let ch = c[i];
        if ch == '\n' {
            line += 1;
            i += 1;
        } else if ch.is_whitespace() {
            i += 1;
        } else if ch == '/' && at(i + 1) == '/' {
            while i < c.len() && c[i] != '\n' {
                i += 1;
            }
        } else if ch == '/' && at(i + 1) == '*' {
            let mut depth = 0;
            loop {
                if at(i) == '/' && at(i + 1) == '*' {
                    depth += 1;
                    i += 2;
                } else if at(i) == '*' && at(i + 1) == '/' {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    line += usize::from(at(i) == '\n');
                    i += 1;
                }
            }
        } else if ch == '"' || (ch == 'b' && at(i + 1) == '"') {
            i += if ch == 'b' { 2 } else { 1 };
            while c[i] != '"' {
                line += usize::from(c[i] == '\n');
                i += if c[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else if (ch == 'r' || (ch == 'b' && at(i + 1) == 'r'))
            && matches!(at(i + 1 + usize::from(ch == 'b')), '"' | '#')
            && !is_ident_char(if i == 0 { ' ' } else { c[i - 1] })
        {
            let mut j = i + 1 + usize::from(ch == 'b');
            let mut hashes = 0;
            while at(j) == '#' {
                hashes += 1;
                j += 1;
            }
            if at(j) != '"' {
                // `r#ident`: a raw identifier.
                let start = j;
                while is_ident_char(at(j)) {
                    j += 1;
                }
                out.push((Tok::Ident(c[start..j].iter().collect()), line));
                i = j;
                continue;
            }
            j += 1;
            loop {
                if c[j] == '"' && (1..=hashes).all(|k| at(j + k) == '#') {
                    break;
                }
                line += usize::from(c[j] == '\n');
                j += 1;
            }
            i = j + 1 + hashes;
        } else if ch == '\'' || (ch == 'b' && at(i + 1) == '\'') {
            i = skip_char_or_lifetime(&c, i + usize::from(ch == 'b'));
        } else if ch.is_ascii_digit() {
            while is_ident_char(at(i)) || (at(i) == '.' && at(i + 1).is_ascii_digit()) {
                i += 1;
            }
        } else if is_ident_char(ch) {
            let start = i;
            while is_ident_char(at(i)) {
                i += 1;
            }
            out.push((Tok::Ident(c[start..i].iter().collect()), line));
        } else if ch == ':' && at(i + 1) == ':' {
            out.push((Tok::Path, line));
            i += 2;
        } else {
            out.push((Tok::Punct(ch), line));
            i += 1;
        }
    }
    out
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Past a char literal, or past the quote and name of a lifetime or label, at `c[j] == '\''`.
fn skip_char_or_lifetime(c: &[char], j: usize) -> usize {
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    if at(j + 1) == '\\' {
        let mut k = j + 2;
        while c[k] != '\'' {
            k += 1;
        }
        k + 1
    } else if at(j + 2) == '\'' {
        j + 3
    } else {
        let mut i = j + 1;
        while is_ident_char(at(i)) {
            i += 1;
        }
        i
    }
}
