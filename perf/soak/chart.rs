//! `soak.svg`: the proxy over a soak, as four panels stacked on one time
//! axis (minutes since the start) — RSS, open descriptors, CPU and
//! delivered events/s — each with its axis from zero. RSS and descriptors
//! also get a dashed line at the first sample's value, the start the
//! soak's margins are measured against, so growth shows as distance from
//! it. Each note (the broker's restart, the clients leaving) is a thin
//! vertical line across all panels, labelled at the top. Every point has
//! a hover title with its time and value.

use crate::samples::Sample;
use plot::scale::{tick_label, Axis};
use plot::svg::{self, Plot};

const SVG_W: f64 = 900.0;
/// Room for the y tick labels ("1.5k", "250k").
const PLOT_LEFT: f64 = 70.0;
const PLOT_RIGHT: f64 = SVG_W - 30.0;
const PLOT_H: f64 = 130.0;
/// From one plot's bottom to the next one's top: the next panel's title.
const PANEL_GAP: f64 = 36.0;
/// Where the title's area ends and the notes' labels begin.
const HEADER_H: f64 = 40.0;
const NOTE_ROW_H: f64 = 14.0;
/// Labels of notes close in time go on rows below each other; past this
/// many rows a label is left out (its line and hover title stay), since a
/// taller stack would push the panels down for little. Rare notes are
/// placed first, so a repeated one ("churn") cannot crowd out the broker's
/// restart.
const MAX_NOTE_ROWS: usize = 4;
/// The labels' font size, and a generous width per character for it (no
/// font metrics here): overlap is worse than a little extra space.
const NOTE_FONT: f64 = 11.0;
const NOTE_CHAR_W: f64 = 6.2;
/// Under the last plot: its tick labels and the x axis title.
const FOOTER_H: f64 = 50.0;

const LINE_COLOUR: &str = "#d62728";
const NOTE_COLOUR: &str = "#7b4fa8";
const START_COLOUR: &str = "#999";

/// Whether a panel gets the dashed line at the first sample's value.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Baseline {
    FirstSample,
    NotDrawn,
}

/// What one panel shows.
struct Metric {
    title: &'static str,
    value: fn(&Sample) -> f64,
    /// A value as the hover title and the start/last text show it.
    show: fn(f64) -> String,
    baseline: Baseline,
}

const METRICS: [Metric; 4] = [
    Metric {
        title: "RSS (MiB)",
        value: |s| s.rss_kib as f64 / 1024.0,
        show: |v| format!("{v:.1} MiB"),
        baseline: Baseline::FirstSample,
    },
    Metric {
        title: "open descriptors",
        value: |s| s.fds as f64,
        show: |v| format!("{v:.0} fds"),
        baseline: Baseline::FirstSample,
    },
    Metric {
        title: "CPU (% of a core)",
        value: |s| s.cpu_percent,
        show: |v| format!("{v:.1}% CPU"),
        baseline: Baseline::NotDrawn,
    },
    Metric {
        title: "delivered events/s",
        value: |s| s.events_per_s,
        show: |v| format!("{} events/s", tick_label(v)),
        baseline: Baseline::NotDrawn,
    },
];

fn minutes(s: &Sample) -> f64 {
    s.seconds as f64 / 60.0
}

/// "12:30": minutes and seconds since the start, for hover titles.
fn clock(seconds: u64) -> String {
    format!("{}:{:02}", seconds / 60, seconds % 60)
}

/// The soak's length for the title, in whole minutes once it has any
/// (the sampler's ticks drift by a second or so, so 1,790 s is the
/// 30 minutes the soak was asked for).
fn duration(seconds: u64) -> String {
    match seconds {
        0..=59 => format!("{seconds} seconds"),
        _ => match (seconds as f64 / 60.0).round() as u64 {
            1 => "1 minute".to_owned(),
            m => format!("{m} minutes"),
        },
    }
}

/// A note's marker: where it is, and the row its label goes on (none when
/// every row is taken there).
struct Marker<'a> {
    sample: &'a Sample,
    note: &'a str,
    x: f64,
    label: Option<Label>,
}

struct Label {
    row: usize,
    /// The pixels the text covers.
    from: f64,
    to: f64,
}

impl Label {
    fn anchored_at_end(&self, x: f64) -> bool {
        self.to < x
    }
}

/// One marker per run of lines with the same note, at the run's first line:
/// the sampler may repeat a note, and one event should read as one.
fn markers<'a>(samples: &'a [Sample], x: &Axis) -> Vec<Marker<'a>> {
    let mut out: Vec<Marker<'a>> = Vec::new();
    let mut previous: Option<&str> = None;
    for s in samples {
        let note = s.note.as_deref();
        if let Some(text) = note {
            if note != previous {
                out.push(Marker {
                    sample: s,
                    note: text,
                    x: x.map(minutes(s), PLOT_LEFT, PLOT_RIGHT),
                    label: None,
                });
            }
        }
        previous = note;
    }
    let times_seen = |note: &str| out.iter().filter(|m| m.note == note).count();
    let mut order: Vec<usize> = (0..out.len()).collect();
    order.sort_by_key(|&i| (times_seen(out[i].note), i));
    for i in order {
        out[i].label = place_label(&out, out[i].x, out[i].note);
    }
    out
}

/// The first row where the label of a note at `x` overlaps no label placed
/// so far, the lines of labelled markers above it cross it nowhere, and its
/// own line crosses no label below. Right of its line, or left of it when
/// it would run off the chart. (Lines without a label start at the panels,
/// under every row.)
fn place_label(placed: &[Marker], x: f64, text: &str) -> Option<Label> {
    const PAD: f64 = 4.0;
    let width = text.chars().count() as f64 * NOTE_CHAR_W;
    let (from, to) = if x + PAD + width <= SVG_W - PAD {
        (x + PAD, x + PAD + width)
    } else {
        (x - PAD - width, x - PAD)
    };
    (0..MAX_NOTE_ROWS)
        .find(|&row| {
            placed.iter().all(|m| {
                let Some(l) = &m.label else { return true };
                let overlaps = l.row == row && from < l.to + PAD && l.from < to + PAD;
                let crosses_it = l.row < row && from - PAD < m.x && m.x < to + PAD;
                let crossed = l.row > row && l.from - PAD < x && x < l.to + PAD;
                !(overlaps || crosses_it || crossed)
            })
        })
        .map(|row| Label { row, from, to })
}

/// The y of a label row's text baseline.
fn row_baseline(row: usize) -> f64 {
    HEADER_H + (row as f64 + 1.0) * NOTE_ROW_H - 3.0
}

pub fn render_svg(samples: &[Sample]) -> String {
    let times: Vec<f64> = samples.iter().map(minutes).collect();
    let x = Axis::fit(&times, true, false);
    let markers = markers(samples, &x);
    let rows = markers
        .iter()
        .filter_map(|m| m.label.as_ref().map(|l| l.row + 1))
        .max()
        .unwrap_or(0);
    let first_top = HEADER_H + rows as f64 * NOTE_ROW_H + PANEL_GAP - 8.0;
    let plots: Vec<Plot> = (0..METRICS.len())
        .map(|i| {
            let top = first_top + i as f64 * (PLOT_H + PANEL_GAP);
            Plot {
                left: PLOT_LEFT,
                right: PLOT_RIGHT,
                top,
                bottom: top + PLOT_H,
            }
        })
        .collect();
    let last_bottom = plots.last().map_or(first_top, |p| p.bottom);
    let height = last_bottom + FOOTER_H;

    let last_seconds = samples.last().map_or(0, |s| s.seconds);
    let mut out = svg::open(SVG_W, height);
    out.push_str(&format!(
        "<text x=\"{}\" y=\"26\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\">Soak: {}</text>\n",
        SVG_W / 2.0,
        duration(last_seconds)
    ));
    // Under the panels' lines, so the data stays readable where they cross.
    for m in &markers {
        out.push_str(&marker(m, first_top, last_bottom));
    }
    for (metric, plot) in METRICS.iter().zip(&plots) {
        out.push_str(&panel(metric, samples, &x, plot));
    }
    if let Some(bottom) = plots.last() {
        out.push_str(&bottom.x_ticks(&x));
        out.push_str(&format!(
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">minutes since start</text>\n",
            (PLOT_LEFT + PLOT_RIGHT) / 2.0,
            bottom.bottom + 38.0
        ));
    }
    out.push_str("</svg>\n");
    out
}

/// A note's line from under its label (or from the top of the first panel,
/// `panels_top`, with no label) to the bottom of the last, and its label.
fn marker(m: &Marker, panels_top: f64, bottom: f64) -> String {
    let note = svg::escape(m.note);
    let title = format!("{}: {note}", clock(m.sample.seconds));
    let top = match &m.label {
        Some(l) => row_baseline(l.row) + 3.0,
        None => panels_top,
    };
    let mut out = format!(
        "<g class=\"note\">\n<title>{title}</title>\n\
         <line x1=\"{x:.1}\" y1=\"{top}\" x2=\"{x:.1}\" y2=\"{bottom}\" stroke=\"{NOTE_COLOUR}\" stroke-width=\"1\" stroke-opacity=\"0.8\"/>\n",
        x = m.x
    );
    if let Some(l) = &m.label {
        let (at, anchor) = if l.anchored_at_end(m.x) {
            (l.to, "end")
        } else {
            (l.from, "start")
        };
        out.push_str(&format!(
            "<text x=\"{at:.1}\" y=\"{}\" text-anchor=\"{anchor}\" font-size=\"{NOTE_FONT}\" fill=\"{NOTE_COLOUR}\">{note}</text>\n",
            row_baseline(l.row)
        ));
    }
    out.push_str("</g>\n");
    out
}

/// One panel: its title (with the start and last values when it has a
/// baseline), frame, grid, the dashed start line and the series.
fn panel(metric: &Metric, samples: &[Sample], x: &Axis, plot: &Plot) -> String {
    let values: Vec<f64> = samples.iter().map(metric.value).collect();
    let y = Axis::fit(&values, true, false);
    let mut out = format!(
        "<g class=\"panel\">\n<text x=\"{}\" y=\"{}\" font-size=\"13\" font-weight=\"bold\">{}</text>\n",
        plot.left,
        plot.top - 8.0,
        metric.title
    );
    out.push_str(&plot.frame());
    for &t in &x.ticks {
        let px = x.map(t, plot.left, plot.right);
        out.push_str(&format!(
            "<line x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#e5e5e5\"/>\n",
            plot.top, plot.bottom
        ));
    }
    out.push_str(&plot.y_ticks(&y));
    if let (Baseline::FirstSample, Some(&start), Some(&last)) =
        (metric.baseline, values.first(), values.last())
    {
        let py = y.map(start, plot.bottom, plot.top);
        out.push_str(&format!(
            "<line x1=\"{}\" y1=\"{py:.1}\" x2=\"{}\" y2=\"{py:.1}\" stroke=\"{START_COLOUR}\" stroke-dasharray=\"5 4\"/>\n\
             <text x=\"{}\" y=\"{}\" text-anchor=\"end\" font-size=\"11\" fill=\"#555\">start {} (dashed), last {}</text>\n",
            plot.left,
            plot.right,
            plot.right,
            plot.top - 8.0,
            (metric.show)(start),
            (metric.show)(last)
        ));
    }
    let points: Vec<(f64, f64)> = samples
        .iter()
        .zip(&values)
        .map(|(s, &v)| plot.pixel(x, &y, (minutes(s), v)))
        .collect();
    out.push_str(&format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{LINE_COLOUR}\" stroke-width=\"1.5\" stroke-linejoin=\"round\"/>\n",
        svg::points(&points)
    ));
    // Invisible dots, there only to carry each point's hover title: drawn,
    // 180 dots per panel would hide the line's shape.
    for ((px, py), (s, &v)) in points.iter().zip(samples.iter().zip(&values)) {
        out.push_str(&format!(
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"4\" fill-opacity=\"0\"><title>{}: {}, {} streams</title></circle>\n",
            clock(s.seconds),
            (metric.show)(v),
            s.streams
        ));
    }
    out.push_str("</g>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(seconds: u64, note: Option<&str>) -> Sample {
        Sample {
            seconds,
            rss_kib: 50_000 + seconds * 10,
            fds: 2000,
            cpu_percent: 40.0,
            events_per_s: 1_900_000.0,
            streams: 2000,
            note: note.map(str::to_owned),
        }
    }

    #[test]
    fn four_panels_and_one_marker_per_run_of_a_note() {
        let samples: Vec<Sample> = (0..180)
            .map(|i| {
                let note = match i {
                    90 | 91 => Some("broker restarted"),
                    150 => Some("a < b"),
                    _ => None,
                };
                sample(i * 10, note)
            })
            .collect();
        let svg = render_svg(&samples);
        assert_eq!(svg.matches("<g class=\"panel\">").count(), 4);
        assert_eq!(svg.matches("<g class=\"note\">").count(), 2);
        assert_eq!(svg.matches(">broker restarted</text>").count(), 1);
        assert!(svg.contains(">a &lt; b</text>"), "the note is escaped");
        assert!(svg.contains("Soak: 30 minutes"));
        // The dashed start line in the RSS and descriptors panels only.
        assert_eq!(svg.matches("stroke-dasharray").count(), 2);
        assert!(svg.contains("start 48.8 MiB (dashed), last 66.3 MiB"));
    }

    #[test]
    fn labels_close_in_time_stack_without_overlapping() {
        let samples: Vec<Sample> = (0..60)
            .map(|i| {
                let note = match i {
                    31 => Some("broker restarted"),
                    _ => (i % 2 == 1).then_some("churn"),
                };
                sample(i * 10, note)
            })
            .collect();
        let x = Axis::fit(
            &samples.iter().map(minutes).collect::<Vec<_>>(),
            true,
            false,
        );
        let markers = markers(&samples, &x);
        assert_eq!(markers.len(), 30, "separated by empty notes, each counts");
        let restart = markers.iter().find(|m| m.note == "broker restarted");
        assert!(
            restart.is_some_and(|m| m.label.is_some()),
            "the rare note is labelled"
        );
        let labels: Vec<(&Marker, &Label)> = markers
            .iter()
            .filter_map(|m| m.label.as_ref().map(|l| (m, l)))
            .collect();
        assert!(labels.len() > 1 && labels.len() < 30, "{}", labels.len());
        for (i, (_, a)) in labels.iter().enumerate() {
            for (_, b) in &labels[i + 1..] {
                assert!(a.row != b.row || a.to < b.from || b.to < a.from);
            }
        }
    }

    #[test]
    fn durations_read_in_whole_minutes() {
        assert_eq!(duration(0), "0 seconds");
        assert_eq!(duration(40), "40 seconds");
        assert_eq!(duration(70), "1 minute");
        assert_eq!(duration(1790), "30 minutes");
        assert_eq!(clock(930), "15:30");
    }
}
