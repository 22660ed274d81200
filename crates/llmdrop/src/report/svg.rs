//! Minimal SVG plots: grouped per-layer bars and a heatmap.

use std::fmt::Write;

const COLORS: [&str; 4] = ["#4C72B0", "#DD8452", "#55A868", "#C44E52"];

/// An SVG document of `w` x `h` with `title` centred on top (left open for the plot).
fn start(w: f64, h: f64, title: &str) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="10">"#
    );
    s.push_str(crate::dest::owner_marker_svg());
    let _ = write!(
        s,
        r#"<text x="{}" y="16" font-size="13" text-anchor="middle">{}</text>"#,
        w / 2.0,
        esc(title)
    );
    s
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// Grouped bars: one group per layer, one bar per series; y from `y_min` to 1.
pub fn layer_bars(title: &str, series: &[(&str, &[f64])], y_min: f64) -> String {
    let n = series.first().map_or(0, |s| s.1.len());
    let (w, h, left, bottom, top) = (60.0 + 24.0 * n as f64, 320.0, 50.0, 40.0, 40.0);
    let plot_h = h - bottom - top;
    let y = |v: f64| top + plot_h * (1.0 - ((v - y_min) / (1.0 - y_min)).clamp(0.0, 1.0));
    let mut s = start(w, h, title);
    for k in 0..=4 {
        let v = y_min + (1.0 - y_min) * k as f64 / 4.0;
        let (x2, yy, tx, ty) = (w - 10.0, y(v), left - 4.0, y(v) + 3.0);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy}" y2="{yy}" stroke="#ddd"/><text x="{tx}" y="{ty}" text-anchor="end">{v:.2}</text>"##
        );
    }
    let group = 24.0;
    let bar = (group - 4.0) / series.len().max(1) as f64;
    for i in 0..n {
        let x0 = left + 4.0 + group * i as f64;
        for (j, (_, vals)) in series.iter().enumerate() {
            let v = vals[i];
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{bar:.1}" height="{:.1}" fill="{}"><title>layer {i}: {v:.5}</title></rect>"#,
                x0 + bar * j as f64,
                y(v),
                (top + plot_h - y(v)).max(0.0),
                COLORS[j % COLORS.len()]
            );
        }
        if i % 2 == 0 {
            let _ = write!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{i}</text>"#,
                x0 + group / 2.0 - 2.0,
                h - bottom + 14.0
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">layer</text>"#,
        w / 2.0,
        h - 8.0
    );
    for (j, (name, _)) in series.iter().enumerate() {
        let lx = left + 10.0 + 110.0 * j as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="24" width="10" height="10" fill="{}"/><text x="{}" y="33">{}</text>"#,
            COLORS[j % COLORS.len()],
            lx + 14.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Heatmap of a triangular matrix `rows[i][n-1]` (row i, column n = 1..); darker = higher.
pub fn heatmap(title: &str, rows: &[Vec<f64>], row_label: &str, col_label: &str) -> String {
    let n = rows.len();
    let cell = 14.0;
    let (left, top) = (50.0, 40.0);
    let (w, h) = (left + cell * n as f64 + 20.0, top + cell * n as f64 + 40.0);
    let vals: Vec<f64> = rows.iter().flatten().copied().collect();
    let lo = vals.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = vals.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut s = start(w, h, &format!("{title} (min {lo:.3}, max {hi:.3})"));
    for (i, row) in rows.iter().enumerate() {
        for (k, &v) in row.iter().enumerate() {
            let t = if hi > lo { (v - lo) / (hi - lo) } else { 1.0 };
            let c = (255.0 * (1.0 - t)) as u8;
            let _ = write!(
                s,
                r#"<rect x="{:.1}" y="{:.1}" width="{cell}" height="{cell}" fill="rgb({c},{c},255)"><title>{row_label} {i}, {col_label} {}: {v:.5}</title></rect>"#,
                left + cell * k as f64,
                top + cell * i as f64,
                k + 1
            );
        }
        if i % 5 == 0 {
            let _ = write!(
                s,
                r#"<text x="{}" y="{:.1}" text-anchor="end">{i}</text>"#,
                left - 4.0,
                top + cell * i as f64 + 10.0
            );
        }
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{} (1..)</text><text x="12" y="{}" transform="rotate(-90 12 {})" text-anchor="middle">{}</text>"#,
        left + cell * n as f64 / 2.0,
        h - 10.0,
        esc(col_label),
        top + cell * n as f64 / 2.0,
        top + cell * n as f64 / 2.0,
        esc(row_label)
    );
    s.push_str("</svg>\n");
    s
}

/// Line plot: one line per named series of (x, y) points.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[(String, Vec<(f64, f64)>)],
) -> String {
    let pts: Vec<(f64, f64)> = series.iter().flat_map(|s| s.1.iter().copied()).collect();
    let (w, h, left, right, top, bottom) = (560.0, 340.0, 60.0, 20.0, 40.0, 50.0);
    let mut s = start(w, h, title);
    if pts.is_empty() {
        s.push_str("</svg>\n");
        return s;
    }
    let (x0, x1) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.0), b.max(p.0))
        });
    let (y0, y1) = pts
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), p| {
            (a.min(p.1), b.max(p.1))
        });
    let (x1, y1) = (
        if x1 > x0 { x1 } else { x0 + 1.0 },
        if y1 > y0 { y1 } else { y0 + 1.0 },
    );
    let px = |x: f64| left + (w - left - right) * (x - x0) / (x1 - x0);
    let py = |y: f64| top + (h - top - bottom) * (1.0 - (y - y0) / (y1 - y0));
    for k in 0..=4 {
        let v = y0 + (y1 - y0) * k as f64 / 4.0;
        let (yy, x2, tx) = (py(v), w - right, left - 4.0);
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{x2}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{tx}" y="{:.1}" text-anchor="end">{v:.2}</text>"##,
            yy + 3.0
        );
    }
    let mut xs: Vec<f64> = pts.iter().map(|p| p.0).collect();
    xs.sort_by(|a, b| a.total_cmp(b));
    xs.dedup();
    for x in xs {
        let _ = write!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{x}</text>"#,
            px(x),
            h - bottom + 14.0
        );
    }
    let _ = write!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">{}</text>"#,
        (left + w - right) / 2.0,
        h - 12.0,
        esc(x_label)
    );
    let _ = write!(
        s,
        r#"<text x="14" y="{0}" transform="rotate(-90 14 {0})" text-anchor="middle">{1}</text>"#,
        (top + h - bottom) / 2.0,
        esc(y_label)
    );
    for (j, (name, p)) in series.iter().enumerate() {
        let color = COLORS[j % COLORS.len()];
        let path: Vec<String> = p
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        let _ = write!(
            s,
            r#"<polyline fill="none" stroke="{color}" stroke-width="2" points="{}"/>"#,
            path.join(" ")
        );
        for &(x, y) in p {
            let _ = write!(
                s,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{color}"><title>{name} k={x}: {y:.4}</title></circle>"#,
                px(x),
                py(y)
            );
        }
        let lx = left + 10.0 + 100.0 * j as f64;
        let _ = write!(
            s,
            r#"<rect x="{lx}" y="24" width="10" height="10" fill="{color}"/><text x="{}" y="33">{}</text>"#,
            lx + 14.0,
            esc(name)
        );
    }
    s.push_str("</svg>\n");
    s
}
