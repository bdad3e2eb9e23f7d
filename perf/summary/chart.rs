//! `results.svg`: the sweep as two panels side by side — delivered
//! events/s and p99 latency against the number of connections K — one
//! line per server (the raw ceiling dashed), one legend under both, and a
//! hover title with each point's value. Written as SVG text rather than
//! with a plotting library: one tried (plotters, SVG backend only) saved a
//! few dozen lines here but still needed `scale` (its log axis labels
//! decades only, its linear axis ends wherever the data does) plus an
//! adapter to it, guessed text sizes, and lost the hover values.

use crate::input::{Record, Scenario, Server, SERVERS};
use crate::measures::lines_of;
use crate::text::thousands;
use plot::scale::{tick_label, Axis};
use plot::svg::{self, Plot};

fn colour(server: Server) -> &'static str {
    match server {
        Server::SseKafka => "#d62728",
        Server::Nchan => "#1f77b4",
        Server::Raw => "#7f7f7f",
    }
}

/// The ceiling is a reference, not a competitor: dashed so it reads as one.
fn dashed(server: Server) -> bool {
    server == Server::Raw
}

const SVG_W: f64 = 900.0;
const SVG_H: f64 = 420.0;
const PANEL_W: f64 = SVG_W / 2.0;
const PLOT_TOP: f64 = 50.0;
const PLOT_BOTTOM: f64 = 330.0;
const PLOT_LEFT: f64 = 75.0;
const PLOT_RIGHT: f64 = 20.0;

/// One server's points for one panel, sorted by K.
struct Series {
    server: Server,
    points: Vec<(f64, f64)>,
}

/// The sweep's (K, value) points per server, skipping lines without them.
fn sweep_series(records: &[Record], value: fn(&Record) -> Option<f64>) -> Vec<Series> {
    SERVERS
        .iter()
        .map(|&server| {
            let mut points: Vec<(f64, f64)> = lines_of(records, Scenario::Sweep, server)
                .filter_map(|r| Some((r.connections? as f64, value(r)?)))
                .filter(|(k, v)| k.is_finite() && v.is_finite())
                .collect();
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            Series { server, points }
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

pub fn render_svg(records: &[Record]) -> String {
    let rate = sweep_series(records, Record::events_per_s);
    let p99 = sweep_series(records, Record::p99);
    let ks: Vec<f64> = rate
        .iter()
        .chain(&p99)
        .flat_map(|s| s.points.iter().map(|p| p.0))
        .collect();
    let x = Axis::fit(&ks, false, true);
    let mut out = svg::open(SVG_W, SVG_H);
    out.push_str(&panel(
        0,
        "delivered events/s",
        "events/s",
        &x,
        &rate,
        false,
    ));
    out.push_str(&panel(1, "p99 latency ms", "p99 ms", &x, &p99, true));
    let mut shown: Vec<Server> = Vec::new();
    for s in rate.iter().chain(&p99) {
        if !shown.contains(&s.server) {
            shown.push(s.server);
        }
    }
    shown.sort_by_key(|s| SERVERS.iter().position(|x| x == s));
    out.push_str(&legend(&shown));
    out.push_str("</svg>\n");
    out
}

/// One panel: frame, grid, ticks, titles and the series (or "no data").
fn panel(
    index: usize,
    title: &str,
    y_title: &str,
    x: &Axis,
    series: &[Series],
    may_log: bool,
) -> String {
    let plot = Plot {
        left: index as f64 * PANEL_W + PLOT_LEFT,
        right: (index as f64 + 1.0) * PANEL_W - PLOT_RIGHT,
        top: PLOT_TOP,
        bottom: PLOT_BOTTOM,
    };
    let left = plot.left;
    let mid = (plot.left + plot.right) / 2.0;
    let mut out = format!(
        "<g>\n<text x=\"{mid}\" y=\"28\" text-anchor=\"middle\" font-size=\"15\" font-weight=\"bold\">{title}</text>\n"
    );
    out.push_str(&plot.frame());
    if series.is_empty() {
        out.push_str(&format!(
            "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\" font-size=\"16\" fill=\"#888\">no data</text>\n</g>\n",
            (PLOT_TOP + PLOT_BOTTOM) / 2.0
        ));
        return out;
    }
    let values: Vec<f64> = series
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .collect();
    let y = Axis::fit(&values, true, may_log);
    out.push_str(&plot.x_ticks(x));
    out.push_str(&plot.y_ticks(&y));
    let y_title_x = left - 55.0;
    let y_mid = (PLOT_TOP + PLOT_BOTTOM) / 2.0;
    let scale = if y.log { " (log scale)" } else { "" };
    out.push_str(&format!(
        "<text x=\"{y_title_x}\" y=\"{y_mid}\" text-anchor=\"middle\" transform=\"rotate(-90 {y_title_x} {y_mid})\">{y_title}{scale}</text>\n"
    ));
    let x_scale = if x.log { " (log scale)" } else { "" };
    out.push_str(&format!(
        "<text x=\"{mid}\" y=\"{}\" text-anchor=\"middle\">connections K{x_scale}</text>\n",
        PLOT_BOTTOM + 38.0
    ));
    for s in series {
        out.push_str(&polyline(s, x, &y, &plot));
    }
    out.push_str("</g>\n");
    out
}

fn polyline(s: &Series, x: &Axis, y: &Axis, plot: &Plot) -> String {
    let colour = colour(s.server);
    let dash = if dashed(s.server) {
        " stroke-dasharray=\"6 4\""
    } else {
        ""
    };
    let pixels: Vec<(f64, f64)> = s.points.iter().map(|&p| plot.pixel(x, y, p)).collect();
    let mut out = format!(
        "<polyline points=\"{}\" fill=\"none\" stroke=\"{colour}\" stroke-width=\"2\"{dash}/>\n",
        svg::points(&pixels)
    );
    for ((px, py), (k, v)) in pixels.iter().zip(&s.points) {
        out.push_str(&format!(
            "<circle cx=\"{px:.1}\" cy=\"{py:.1}\" r=\"3.5\" fill=\"{colour}\"><title>{} K={}: {}</title></circle>\n",
            s.server.label(),
            thousands(*k),
            tick_label(*v)
        ));
    }
    out
}

/// One legend row under both panels, centred.
fn legend(servers: &[Server]) -> String {
    const ITEM_W: f64 = 140.0;
    let y = SVG_H - 18.0;
    let start = (SVG_W - ITEM_W * servers.len() as f64) / 2.0;
    let mut out = String::new();
    for (i, s) in servers.iter().enumerate() {
        let x0 = start + i as f64 * ITEM_W;
        let dash = if dashed(*s) {
            " stroke-dasharray=\"6 4\""
        } else {
            ""
        };
        out.push_str(&format!(
            "<line x1=\"{x0}\" y1=\"{y}\" x2=\"{}\" y2=\"{y}\" stroke=\"{c}\" stroke-width=\"2\"{dash}/>\n\
             <circle cx=\"{}\" cy=\"{y}\" r=\"3.5\" fill=\"{c}\"/>\n\
             <text x=\"{}\" y=\"{}\">{}</text>\n",
            x0 + 30.0,
            x0 + 15.0,
            x0 + 38.0,
            y + 4.0,
            s.label(),
            c = colour(*s)
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn svg_without_sweep_says_no_data() {
        let svg = render_svg(&[]);
        assert_eq!(svg.matches("no data").count(), 2);
    }
}
