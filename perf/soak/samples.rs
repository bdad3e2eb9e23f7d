//! Reading a soak's samples: the TSV perf/soak.sh writes, a header line
//! and then one line every 10 s with the proxy's RSS, open descriptors,
//! CPU, delivered events per second and open streams, and a note marking
//! an event ("broker restarted"). Strict about the columns, so a changed
//! script fails here naming the file, the line and the column instead of
//! drawing a wrong chart.

use std::fmt;

/// One line of the file.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Since the soak started.
    pub seconds: u64,
    pub rss_kib: u64,
    pub fds: u64,
    /// Over the last interval; 100 is one core.
    pub cpu_percent: f64,
    /// Delivered to clients over the last interval.
    pub events_per_s: f64,
    pub streams: u64,
    /// What happened just before this sample, if anything.
    pub note: Option<String>,
}

/// The file's columns, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Seconds,
    RssKib,
    Fds,
    CpuPercent,
    EventsPerS,
    Streams,
    Note,
}

const COLUMNS: [Column; 7] = [
    Column::Seconds,
    Column::RssKib,
    Column::Fds,
    Column::CpuPercent,
    Column::EventsPerS,
    Column::Streams,
    Column::Note,
];

impl Column {
    /// Its name in the header line.
    pub fn name(self) -> &'static str {
        match self {
            Column::Seconds => "seconds",
            Column::RssKib => "rss_kib",
            Column::Fds => "fds",
            Column::CpuPercent => "cpu_percent",
            Column::EventsPerS => "events_per_s",
            Column::Streams => "streams",
            Column::Note => "note",
        }
    }

    /// Counted from 1, as an editor or `cut -f` counts.
    pub fn number(self) -> usize {
        COLUMNS.iter().position(|&c| c == self).unwrap_or(0) + 1
    }

    /// What the column holds, for an error message.
    fn expected(self) -> &'static str {
        match self {
            Column::CpuPercent | Column::EventsPerS => "a non-negative number",
            Column::Note => "text",
            _ => "a whole number",
        }
    }
}

/// What is wrong with a line.
#[derive(Clone, Debug, PartialEq)]
pub enum Problem {
    /// The header's column `column` (from 1) is not `expected` (None: the
    /// header should have ended) but `found` (None: it ended).
    Header {
        column: usize,
        expected: Option<&'static str>,
        found: Option<String>,
    },
    /// The line ends before this column (only the note may be left out).
    Missing(Column),
    /// More columns than the seven; `column` counts from 1.
    Extra { column: usize, found: String },
    /// Not the number this column holds.
    Number { column: Column, found: String },
    /// The time does not move forward from the line before.
    NotAfter { previous: u64, found: u64 },
    /// The file ends after its header.
    NoSamples,
}

/// A malformed file: which one, where, and what is wrong.
#[derive(Clone, Debug, PartialEq)]
pub struct SampleError {
    pub file: String,
    /// Counted from 1; for `NoSamples`, the line where the first sample
    /// should have been.
    pub line: usize,
    pub problem: Problem,
}

impl fmt::Display for SampleError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}: ", self.file, self.line)?;
        let at = |c: Column| format!("column {} ({})", c.number(), c.name());
        match &self.problem {
            Problem::Header {
                column,
                expected,
                found,
            } => {
                let expected =
                    expected.map_or("the header to end".to_owned(), |e| format!("{e:?}"));
                let found = found
                    .as_ref()
                    .map_or("nothing".to_owned(), |s| format!("{s:?}"));
                write!(
                    f,
                    "header column {column}: expected {expected}, found {found}"
                )
            }
            Problem::Missing(c) => write!(f, "{}: missing (the line ends before it)", at(*c)),
            Problem::Extra { column, found } => write!(
                f,
                "column {column}: unexpected {found:?} (a line has {} columns)",
                COLUMNS.len()
            ),
            Problem::Number { column, found } => write!(
                f,
                "{}: expected {}, found {found:?}",
                at(*column),
                column.expected()
            ),
            Problem::NotAfter { previous, found } => write!(
                f,
                "{}: {found} is not after the line before's {previous}",
                at(Column::Seconds)
            ),
            Problem::NoSamples => write!(f, "no samples (the file ends after its header)"),
        }
    }
}

impl std::error::Error for SampleError {}

/// The samples of `text`, the contents of the file `file` (named in errors).
/// Blank lines are skipped: they carry no sample, and a trailing one is
/// what an editor leaves.
pub fn parse_samples(text: &str, file: &str) -> Result<Vec<Sample>, SampleError> {
    let error = |line: usize, problem: Problem| SampleError {
        file: file.to_owned(),
        line,
        problem,
    };
    let mut lines = text.lines().enumerate().map(|(i, l)| (i + 1, l));
    let header = lines.next().map_or("", |(_, l)| l);
    check_header(header).map_err(|p| error(1, p))?;
    let mut samples: Vec<Sample> = Vec::new();
    let mut last_line = 1;
    for (number, line) in lines {
        last_line = number;
        if line.is_empty() {
            continue;
        }
        let sample = parse_line(line).map_err(|p| error(number, p))?;
        if let Some(previous) = samples.last() {
            if sample.seconds <= previous.seconds {
                let problem = Problem::NotAfter {
                    previous: previous.seconds,
                    found: sample.seconds,
                };
                return Err(error(number, problem));
            }
        }
        samples.push(sample);
    }
    if samples.is_empty() {
        return Err(error(last_line + 1, Problem::NoSamples));
    }
    Ok(samples)
}

fn check_header(line: &str) -> Result<(), Problem> {
    let found: Vec<&str> = if line.is_empty() {
        Vec::new()
    } else {
        line.split('\t').collect()
    };
    for i in 0..found.len().max(COLUMNS.len()) {
        let expected = COLUMNS.get(i).map(|c| c.name());
        let got = found.get(i).copied();
        if expected != got {
            return Err(Problem::Header {
                column: i + 1,
                expected,
                found: got.map(str::to_owned),
            });
        }
    }
    Ok(())
}

fn parse_line(line: &str) -> Result<Sample, Problem> {
    let fields: Vec<&str> = line.split('\t').collect();
    if let Some(extra) = fields.get(COLUMNS.len()) {
        return Err(Problem::Extra {
            column: COLUMNS.len() + 1,
            found: (*extra).to_owned(),
        });
    }
    // The note may be left out entirely (no tab after the streams).
    let field = |column: Column| -> Result<&str, Problem> {
        match fields.get(column.number() - 1) {
            Some(f) => Ok(*f),
            None if column == Column::Note => Ok(""),
            None => Err(Problem::Missing(column)),
        }
    };
    let whole = |column: Column| -> Result<u64, Problem> {
        let text = field(column)?;
        text.parse().map_err(|_| Problem::Number {
            column,
            found: text.to_owned(),
        })
    };
    let real = |column: Column| -> Result<f64, Problem> {
        let text = field(column)?;
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(Problem::Number {
                column,
                found: text.to_owned(),
            }),
        }
    };
    let note = field(Column::Note)?.trim();
    Ok(Sample {
        seconds: whole(Column::Seconds)?,
        rss_kib: whole(Column::RssKib)?,
        fds: whole(Column::Fds)?,
        cpu_percent: real(Column::CpuPercent)?,
        events_per_s: real(Column::EventsPerS)?,
        streams: whole(Column::Streams)?,
        note: (!note.is_empty()).then(|| note.to_owned()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "seconds\trss_kib\tfds\tcpu_percent\tevents_per_s\tstreams\tnote\n";

    fn parse(body: &str) -> Result<Vec<Sample>, SampleError> {
        parse_samples(&format!("{HEADER}{body}"), "soak.tsv")
    }

    fn problem(body: &str) -> (usize, Problem) {
        let e = parse(body).expect_err("should be rejected");
        assert_eq!(e.file, "soak.tsv");
        (e.line, e.problem)
    }

    #[test]
    fn reads_a_good_file() {
        let samples = parse(
            "0\t52340\t38\t3.1\t0\t0\t\n\
             10\t60112\t2041\t41.7\t1983000\t2000\t\n\
             930\t61000\t2043\t40.2\t1975000\t2000\tbroker restarted\n",
        )
        .unwrap();
        assert_eq!(samples.len(), 3);
        assert_eq!(
            samples[1],
            Sample {
                seconds: 10,
                rss_kib: 60112,
                fds: 2041,
                cpu_percent: 41.7,
                events_per_s: 1_983_000.0,
                streams: 2000,
                note: None,
            }
        );
        assert_eq!(samples[2].note.as_deref(), Some("broker restarted"));
    }

    #[test]
    fn empty_notes_with_or_without_their_tab() {
        let samples = parse(
            "0\t1\t2\t3\t4\t5\t\n\
             10\t1\t2\t3\t4\t5\n\
             20\t1\t2\t3\t4\t5\t  \n\
             \n",
        )
        .unwrap();
        assert_eq!(samples.len(), 3);
        assert!(samples.iter().all(|s| s.note.is_none()), "{samples:?}");
    }

    #[test]
    fn malformed_lines_name_line_and_column() {
        let cases: &[(&str, usize, Problem)] = &[
            (
                "0\t1\t2\t3\t4\t5\t\n10\t1\t2\tbusy\t4\t5\t\n",
                3,
                Problem::Number {
                    column: Column::CpuPercent,
                    found: "busy".into(),
                },
            ),
            (
                "0\t1\t2\t3\tNaN\t5\t\n",
                2,
                Problem::Number {
                    column: Column::EventsPerS,
                    found: "NaN".into(),
                },
            ),
            (
                "0\t1\t2.5\t3\t4\t5\t\n",
                2,
                Problem::Number {
                    column: Column::Fds,
                    found: "2.5".into(),
                },
            ),
            ("0\t1\t2\t3\n", 2, Problem::Missing(Column::EventsPerS)),
            (
                "0\t1\t2\t3\t4\t5\tnote\tmore\n",
                2,
                Problem::Extra {
                    column: 8,
                    found: "more".into(),
                },
            ),
            (
                "10\t1\t2\t3\t4\t5\n10\t1\t2\t3\t4\t5\n",
                3,
                Problem::NotAfter {
                    previous: 10,
                    found: 10,
                },
            ),
            ("", 2, Problem::NoSamples),
        ];
        for (body, line, expected) in cases {
            assert_eq!(problem(body), (*line, expected.clone()), "{body:?}");
        }
        let e = parse("0\t1\t2\t3\t4\t5\t\n10\t1\t2\tbusy\t4\t5\t\n").unwrap_err();
        assert_eq!(
            e.to_string(),
            "soak.tsv:3: column 4 (cpu_percent): expected a non-negative number, found \"busy\""
        );
    }

    #[test]
    fn header_must_match() {
        let e = parse_samples("seconds\trss\tfds\n0\t1\t2\t3\t4\t5\n", "s.tsv").unwrap_err();
        assert_eq!(e.line, 1);
        assert_eq!(
            e.to_string(),
            "s.tsv:1: header column 2: expected \"rss_kib\", found \"rss\""
        );
        let e = parse_samples("", "s.tsv").unwrap_err();
        assert_eq!(
            e.problem,
            Problem::Header {
                column: 1,
                expected: Some("seconds"),
                found: None
            }
        );
    }
}
