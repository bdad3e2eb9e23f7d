//! What the perf charts share: `results.svg` (perf_summary, the sweep of a
//! comparison run) and `soak.svg` (soak_chart, a soak's samples over time)
//! are written as SVG text by hand, and both need the same axes and the
//! same few SVG pieces.
//!
//! - `scale`: where an axis ends, where its ticks go and how they read.
//! - `svg`: the document's opening, a plot's frame and tick marks, a
//!   polyline's points, and escaping for text that comes from the input.

pub mod scale;
pub mod svg;
