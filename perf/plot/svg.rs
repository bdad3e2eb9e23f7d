//! The SVG both charts are made of: the document's opening (white
//! background, one font), a plot's rectangle with its frame, tick marks
//! and grid lines, a polyline's points, and escaping for free text (a soak
//! note) that would otherwise break the XML.

use crate::scale::{tick_label, Axis};

/// The opening of a `width` × `height` document on a white background (a
/// viewer's dark theme would otherwise show through). Close it with
/// `</svg>`.
pub fn open(width: f64, height: f64) -> String {
    format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\" \
         viewBox=\"0 0 {width} {height}\" font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n\
         <rect width=\"{width}\" height=\"{height}\" fill=\"white\"/>\n"
    )
}

/// `text` safe inside an element or a quoted attribute.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            _ => out.push(c),
        }
    }
    out
}

/// A plot's rectangle in pixels: the x axis runs from `left` to `right`,
/// the y axis from `bottom` (its low end) up to `top`.
#[derive(Clone, Copy, Debug)]
pub struct Plot {
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

impl Plot {
    /// Where the value (`vx`, `vy`) falls on the plot.
    pub fn pixel(&self, x: &Axis, y: &Axis, (vx, vy): (f64, f64)) -> (f64, f64) {
        (
            x.map(vx, self.left, self.right),
            y.map(vy, self.bottom, self.top),
        )
    }

    /// The plot's outline.
    pub fn frame(&self) -> String {
        format!(
            "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#333\"/>\n",
            self.left,
            self.top,
            self.right - self.left,
            self.bottom - self.top
        )
    }

    /// Tick marks and labels under the plot.
    pub fn x_ticks(&self, x: &Axis) -> String {
        let mut out = String::new();
        for &t in &x.ticks {
            let px = x.map(t, self.left, self.right);
            out.push_str(&format!(
                "<line x1=\"{px:.1}\" y1=\"{}\" x2=\"{px:.1}\" y2=\"{}\" stroke=\"#333\"/>\n\
                 <text x=\"{px:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
                self.bottom,
                self.bottom + 5.0,
                self.bottom + 18.0,
                tick_label(t)
            ));
        }
        out
    }

    /// Tick marks and labels left of the plot, each with a light grid line
    /// across it.
    pub fn y_ticks(&self, y: &Axis) -> String {
        let (left, right) = (self.left, self.right);
        let mut out = String::new();
        for &t in &y.ticks {
            let py = y.map(t, self.bottom, self.top);
            out.push_str(&format!(
                "<line x1=\"{left}\" y1=\"{py:.1}\" x2=\"{right}\" y2=\"{py:.1}\" stroke=\"#e5e5e5\"/>\n\
                 <line x1=\"{}\" y1=\"{py:.1}\" x2=\"{left}\" y2=\"{py:.1}\" stroke=\"#333\"/>\n\
                 <text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\n",
                left - 5.0,
                left - 8.0,
                py + 4.0,
                tick_label(t)
            ));
        }
        out
    }
}

/// A polyline's `points` attribute; a tenth of a pixel is finer than any
/// screen shows and keeps the file small.
pub fn points(pixels: &[(f64, f64)]) -> String {
    let coords: Vec<String> = pixels
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect();
    coords.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("a < b & \"c\" > d"),
            "a &lt; b &amp; &quot;c&quot; &gt; d"
        );
        assert_eq!(escape("broker restarted"), "broker restarted");
    }

    #[test]
    fn points_have_a_tenth_of_a_pixel() {
        assert_eq!(points(&[(1.0, 2.26), (3.333, 4.0)]), "1.0,2.3 3.3,4.0");
    }
}
