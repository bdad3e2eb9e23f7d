//! Numbers and Markdown pieces as the tables show them: thousands
//! separators, fixed decimals, "—" for anything missing (a failed step
//! must still render), ratios as "1.98×", tables with right-aligned number
//! columns (and padded plain-text ones for the terminal), and inline code
//! that survives backticks.

pub const NONE: &str = "—";

/// Inserts thousands separators into a run of ASCII digits.
fn group_digits(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A number rounded to an integer with thousands separators: 199,876.
pub fn thousands(v: f64) -> String {
    if !v.is_finite() {
        return NONE.to_owned();
    }
    let r = v.round();
    let digits = group_digits(&format!("{:.0}", r.abs()));
    if r < 0.0 {
        format!("-{digits}")
    } else {
        digits
    }
}

pub fn count(v: Option<u64>) -> String {
    v.map_or_else(|| NONE.to_owned(), |n| group_digits(&n.to_string()))
}

pub fn grouped(v: Option<f64>) -> String {
    v.map_or_else(|| NONE.to_owned(), thousands)
}

pub fn fixed(v: Option<f64>, decimals: usize) -> String {
    match v {
        Some(x) if x.is_finite() => format!("{x:.decimals$}"),
        _ => NONE.to_owned(),
    }
}

pub fn ms(v: Option<f64>) -> String {
    fixed(v, 1)
}

pub fn cpu(v: Option<f64>) -> String {
    fixed(v, 2)
}

pub fn times(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite())
        .map_or_else(|| NONE.to_owned(), |x| format!("{x:.2}×"))
}

/// A Markdown table; the first `text_cols` columns are left-aligned, the
/// rest (numbers) right-aligned so digits line up in the rendered page.
/// The table, or "_Not measured._" when there are no rows.
pub fn table_or_none(headers: &[&str], text_cols: usize, rows: &[Vec<String>]) -> String {
    if rows.is_empty() {
        "_Not measured._\n".to_owned()
    } else {
        table(headers, text_cols, rows)
    }
}

pub fn table(headers: &[&str], text_cols: usize, rows: &[Vec<String>]) -> String {
    let mut out = format!("| {} |\n|", headers.join(" | "));
    for i in 0..headers.len() {
        out.push_str(if i < text_cols { " --- |" } else { " ---: |" });
    }
    out.push('\n');
    for row in rows {
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out
}

/// A plain-text table for the terminal: columns padded to their widest
/// cell (counted in characters: "×" and "—" are one column, not two or
/// three bytes), two spaces apart, a rule under the headers.
pub fn aligned(headers: &[&str], rows: &[Vec<String>]) -> String {
    fn width(s: &str) -> usize {
        s.chars().count()
    }
    fn line<'a>(cells: impl IntoIterator<Item = &'a str>, widths: &[usize]) -> String {
        let padded: Vec<String> = cells
            .into_iter()
            .zip(widths)
            .map(|(c, &w)| format!("{c}{}", " ".repeat(w.saturating_sub(width(c)))))
            .collect();
        format!("{}\n", padded.join("  ").trim_end())
    }
    let mut widths: Vec<usize> = headers.iter().map(|h| width(h)).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(width(cell));
        }
    }
    let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w)).collect();
    let mut out = line(headers.iter().copied(), &widths);
    out.push_str(&line(rule.iter().map(String::as_str), &widths));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str), &widths));
    }
    out
}

/// Inline code that survives backticks inside the text (a shell command may
/// contain them): the fence is one backtick longer than the longest run.
pub fn inline_code(text: &str) -> String {
    let longest_run = text.split(|c| c != '`').map(str::len).max().unwrap_or(0);
    let fence = "`".repeat(longest_run + 1);
    format!("{fence} {text} {fence}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(199_876.4), "199,876");
        assert_eq!(thousands(999.6), "1,000");
        assert_eq!(thousands(12.0), "12");
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(-1_234_567.0), "-1,234,567");
        assert_eq!(thousands(f64::NAN), NONE);
        assert_eq!(count(Some(10_000)), "10,000");
        assert_eq!(count(None), NONE);
    }

    #[test]
    fn aligned_pads_by_characters() {
        let rows = vec![
            vec!["1.05×".to_owned(), "MET".to_owned()],
            vec![NONE.to_owned(), "x".to_owned()],
        ];
        assert_eq!(
            aligned(&["Ratio", "Result"], &rows),
            "Ratio  Result\n-----  ------\n1.05×  MET\n—      x\n"
        );
    }
}
