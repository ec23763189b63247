//! HTML writing for the console: escaping (every value written into a page goes through
//! [`esc`]), the page frame, and small helpers. Pages are plain server-rendered HTML5 with
//! one stylesheet and no script; nothing here writes a `style` attribute or inline script,
//! which the console's Content-Security-Policy would refuse.

use std::fmt::Write as _;

use time::OffsetDateTime;

use super::Role;

/// `s` escaped for HTML text and double-quoted attribute values.
pub(crate) fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `s` percent-encoded for a URL query value.
pub(crate) fn url_enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// A time as the console shows it: `2026-12-07 23:10:00 UTC`.
pub(crate) fn when(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// A duration from now to `t`, roughly: `in 3 d 4 h`, `2 h ago`.
pub(crate) fn relative(t: OffsetDateTime, now: OffsetDateTime) -> String {
    let secs = (t - now).whole_seconds();
    let abs = secs.unsigned_abs();
    let text = if abs >= 2 * 86_400 {
        format!("{} d {} h", abs / 86_400, abs % 86_400 / 3600)
    } else if abs >= 3600 {
        format!("{} h {} min", abs / 3600, abs % 3600 / 60)
    } else if abs >= 60 {
        format!("{} min", abs / 60)
    } else {
        format!("{abs} s")
    };
    if secs >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// Which section of the console a page belongs to (marked in the navigation).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Certificates,
    Audit,
    Provisioners,
    None,
}

/// Who is signed in, for the page frame: the role and the CSRF token of the sign-out form.
pub(crate) struct Viewer<'a> {
    pub(crate) role: Role,
    pub(crate) csrf: &'a str,
}

/// A whole page: `title`, the navigation (when signed in) and `body`.
pub(crate) fn page(
    title: &str,
    section: Section,
    viewer: Option<&Viewer<'_>>,
    body: &str,
) -> String {
    let mut out = String::with_capacity(body.len() + 2048);
    out.push_str(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"same-origin\">\n",
    );
    let _ = writeln!(out, "<title>{} · Signet console</title>", esc(title));
    out.push_str("<link rel=\"stylesheet\" href=\"/ui/static/console.css\">\n");
    out.push_str("<link rel=\"icon\" href=\"data:,\">\n</head>\n<body>\n");
    out.push_str("<a class=\"skip\" href=\"#main\">Skip to content</a>\n");
    out.push_str("<header class=\"top\">\n<p class=\"brand\"><a href=\"/ui\">Signet</a></p>\n");
    if let Some(v) = viewer {
        out.push_str("<nav aria-label=\"Console\">\n<ul>\n");
        for (s, href, label) in [
            (Section::Overview, "/ui", "Overview"),
            (Section::Certificates, "/ui/certificates", "Certificates"),
            (Section::Audit, "/ui/audit", "Audit log"),
            (Section::Provisioners, "/ui/provisioners", "Provisioners"),
        ] {
            let current = if s == section {
                " aria-current=\"page\""
            } else {
                ""
            };
            let _ = writeln!(out, "<li><a href=\"{href}\"{current}>{label}</a></li>");
        }
        out.push_str("</ul>\n</nav>\n");
        let _ = writeln!(
            out,
            "<form class=\"signout\" method=\"post\" action=\"/ui/sign-out\">\
             <span class=\"role\">Signed in as {role}</span>\
             <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
             <button type=\"submit\">Sign out</button></form>",
            role = v.role.name(),
            csrf = esc(v.csrf)
        );
    }
    out.push_str("</header>\n<main id=\"main\">\n");
    let _ = writeln!(out, "<h1>{}</h1>", esc(title));
    out.push_str(body);
    out.push_str("</main>\n</body>\n</html>\n");
    out
}

/// `<option>`s for a `<select>`: (value, label), the one equal to `selected` marked.
pub(crate) fn options(choices: &[(&str, &str)], selected: &str) -> String {
    let mut out = String::new();
    for (value, label) in choices {
        let sel = if *value == selected { " selected" } else { "" };
        let _ = write!(
            out,
            "<option value=\"{}\"{sel}>{}</option>",
            esc(value),
            esc(label)
        );
    }
    out
}
