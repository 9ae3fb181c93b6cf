//! The 2-D cluster map: which records are drawn (an even sample above the cap), where
//! (given points, or a neighbour-preserving layout of the embeddings), in which colour,
//! as inline SVG.

use crate::html::{esc, truncate, w};
use crate::input::ReportInput;
use crate::limits::MAX_MAP_POINTS;
use retort_core::Record;

/// Indices of at most `cap` of `n` items, spread evenly over the whole range so a
/// sample of a sorted or grouped input still covers every group in proportion.
pub fn sample_evenly(n: usize, cap: usize) -> Vec<usize> {
    if n <= cap {
        return (0..n).collect();
    }
    // i * n / cap is strictly increasing for n > cap, so no index repeats.
    (0..cap)
        .map(|i| ((i as u128 * n as u128) / cap as u128) as usize)
        .collect()
}

/// What the map section draws.
pub(crate) struct MapData {
    /// Record index per drawn point.
    pub idx: Vec<usize>,
    /// Map coordinates per drawn point (same order as `idx`).
    pub xy: Vec<[f32; 2]>,
    /// Notes shown above the map (sampling, projection, dropped points).
    pub notes: Vec<String>,
}

/// Chooses the drawn points; `Err` carries the sentence shown instead of a map.
pub(crate) fn map_data(input: &ReportInput) -> Result<MapData, String> {
    let n = input.records.len();
    if n == 0 {
        return Err("There are no records, so there is nothing to map.".into());
    }
    let sample = sample_evenly(n, MAX_MAP_POINTS);
    let mut notes = Vec::new();
    if sample.len() < n {
        notes.push(format!(
            "Showing {} of {} records, sampled evenly (the map is capped at {} points).",
            crate::html::int(sample.len() as u64),
            crate::html::int(n as u64),
            crate::html::int(MAX_MAP_POINTS as u64)
        ));
    }
    let (idx, xy) = match &input.points {
        Some(points) => {
            if points.len() != n {
                return Err(format!(
                    "The report was given {} map points for {} records, so the map is left out \
                     rather than drawn against the wrong records.",
                    points.len(),
                    n
                ));
            }
            notes.extend(input.points_note.clone());
            let mut idx = Vec::with_capacity(sample.len());
            let mut xy = Vec::with_capacity(sample.len());
            for &i in &sample {
                let p = points[i];
                if p[0].is_finite() && p[1].is_finite() {
                    idx.push(i);
                    xy.push(p);
                }
            }
            if idx.len() < sample.len() {
                notes.push(format!(
                    "{} records have non-finite map coordinates and are not drawn.",
                    sample.len() - idx.len()
                ));
            }
            (idx, xy)
        }
        None => {
            let with: Vec<usize> = sample
                .iter()
                .copied()
                .filter(|&i| input.records[i].embedding.is_some())
                .collect();
            if with.is_empty() {
                return Err(
                    "No map coordinates and no embeddings were given, so there is no map. \
                            Run an `embed` step before the report."
                        .into(),
                );
            }
            let dim = input.records[with[0]]
                .embedding
                .as_ref()
                .map_or(0, Vec::len);
            if dim == 0 {
                return Err(format!(
                    "Record {} has an empty embedding, so there is nothing to project.",
                    input.records[with[0]].id
                ));
            }
            if let Some(&bad) = with
                .iter()
                .find(|&&i| input.records[i].embedding.as_ref().map_or(0, Vec::len) != dim)
            {
                return Err(format!(
                    "Embeddings have different dimensions ({} for record {}, {} for record {}), \
                     so they cannot share one map.",
                    dim,
                    input.records[with[0]].id,
                    input.records[bad].embedding.as_ref().map_or(0, Vec::len),
                    input.records[bad].id
                ));
            }
            if with.len() < sample.len() {
                notes.push(format!(
                    "{} records have no embedding and are not drawn.",
                    sample.len() - with.len()
                ));
            }
            let mut flat = Vec::with_capacity(with.len() * dim);
            for &i in &with {
                flat.extend_from_slice(input.records[i].embedding.as_deref().unwrap_or(&[]));
            }
            let (xy, projection) = retort_vector::layout::map_2d(&flat, dim, 0);
            notes.push(projection.describe().into());
            (with, xy)
        }
    };
    Ok(MapData { idx, xy, notes })
}

/// Colour of a cluster: 20 hand-picked distinct colours, then golden-angle hues.
pub fn colour(cluster: Option<u32>) -> String {
    const PALETTE: [&str; 20] = [
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7",
        "#9c755f", "#2f4b7c", "#a05195", "#00a2b3", "#d45087", "#8cd17d", "#665191", "#f1a340",
        "#2ca02c", "#bc5090", "#1f77b4", "#c0392b",
    ];
    match cluster {
        None => "#9aa0a6".into(),
        Some(c) if (c as usize) < PALETTE.len() => PALETTE[c as usize].into(),
        Some(c) => format!("hsl({:.0},55%,48%)", (c as f64 * 137.508) % 360.0),
    }
}

/// The text shown when hovering a point: id, cluster, scores, then the prompt.
pub(crate) fn hover_text(r: &Record, label: Option<&str>) -> String {
    let mut head = r.id.clone();
    match (r.cluster, label) {
        (Some(c), Some(l)) => head.push_str(&format!(" · cluster {c} ({l})")),
        (Some(c), None) => head.push_str(&format!(" · cluster {c}")),
        (None, _) => head.push_str(" · unclustered"),
    }
    for key in ["quality", "difficulty"] {
        if let Some(v) = r.scores.get(key) {
            head.push_str(&format!(" · {key} {}", crate::html::num(*v)));
        }
    }
    format!("{head}\n{}", truncate(&r.prompt_text(), 240))
}

/// Map viewport size (SVG user units).
const W: f32 = 960.0;
const H: f32 = 600.0;
const PAD: f32 = 14.0;

/// Writes the `<svg>` with one `<circle class="pt">` per drawn point.
pub(crate) fn svg(
    out: &mut String,
    input: &ReportInput,
    data: &MapData,
    label_of: &dyn Fn(u32) -> Option<String>,
) {
    let (mut x0, mut x1, mut y0, mut y1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
    for p in &data.xy {
        x0 = x0.min(p[0]);
        x1 = x1.max(p[0]);
        y0 = y0.min(p[1]);
        y1 = y1.max(p[1]);
    }
    // A degenerate axis (all points equal) is drawn through the middle.
    let sx = if x1 > x0 {
        (W - 2.0 * PAD) / (x1 - x0)
    } else {
        0.0
    };
    let sy = if y1 > y0 {
        (H - 2.0 * PAD) / (y1 - y0)
    } else {
        0.0
    };
    let r = match data.xy.len() {
        0..=1500 => 4.0,
        1501..=6000 => 3.0,
        _ => 2.2,
    };
    w!(
        out,
        r#"<svg id="map-svg" class="map" viewBox="0 0 {W} {H}" role="img" aria-label="2-D map of {} records coloured by cluster" xmlns="http://www.w3.org/2000/svg">"#,
        data.xy.len()
    );
    for (&i, p) in data.idx.iter().zip(&data.xy) {
        let rec = &input.records[i];
        let cx = if sx > 0.0 {
            PAD + (p[0] - x0) * sx
        } else {
            W / 2.0
        };
        let cy = if sy > 0.0 {
            H - PAD - (p[1] - y0) * sy
        } else {
            H / 2.0
        };
        let c = rec.cluster.map_or("none".to_string(), |c| c.to_string());
        let label = rec.cluster.and_then(label_of);
        w!(
            out,
            r#"<circle class="pt" cx="{cx:.1}" cy="{cy:.1}" r="{r}" fill="{}" data-c="{c}"><title>{}</title></circle>"#,
            colour(rec.cluster),
            esc(&hover_text(rec, label.as_deref()))
        );
    }
    out.push_str("</svg>");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_keeps_everything_under_the_cap() {
        assert_eq!(sample_evenly(5, 10), vec![0, 1, 2, 3, 4]);
        assert_eq!(sample_evenly(10, 10).len(), 10);
    }

    #[test]
    fn sampling_above_the_cap_is_even_and_distinct() {
        let s = sample_evenly(50_000, 20_000);
        assert_eq!(s.len(), 20_000);
        assert!(
            s.windows(2).all(|w| w[0] < w[1]),
            "indices strictly increase"
        );
        assert_eq!(s[0], 0);
        assert!(
            *s.last().unwrap() >= 49_990,
            "the tail of the input is covered"
        );
        // Evenly spread: every block of 5,000 input rows gets 2,000 sampled points.
        for block in 0..10 {
            let lo = block * 5_000;
            let k = s.iter().filter(|&&i| i >= lo && i < lo + 5_000).count();
            assert_eq!(k, 2_000, "block {block}");
        }
    }
}
