//! The picture a reader looks at first: for each nodule found in a scan,
//! the axial slice through its centre in a lung window, the nodule ringed,
//! its number, P(nodule), P(malignant) and position written above. Up to
//! [`MAX_PANELS`] nodules, the likeliest first; a scan without any gets
//! its middle slice and says so.

use std::path::Path;

use plotters::prelude::*;
use shared::volume::Volume;

use super::scan::ClassifiedCandidate;
use crate::evaluate::plots::{text_available, write_png_over, PlotError, Root, FONT_FAMILY};

/// Panels a picture holds at most (the rest are in nodules.csv).
pub const MAX_PANELS: usize = 9;
const PANEL: u32 = 320;
const HEADER: u32 = 44;
const PER_ROW: usize = 3;
/// Lung window: air black, soft tissue and vessels white.
const WINDOW_HU: (f32, f32) = (-1000.0, 400.0);

/// What one panel shows.
struct Panel {
    slice: usize,
    /// The ring's centre (row, column) in voxels and radius in voxels.
    ring: Option<([f64; 2], f64)>,
    lines: [String; 2],
}

/// Writes `path`: a panel per nodule of `nodules` (at most [`MAX_PANELS`]).
pub fn write_scan_picture(
    path: &Path,
    volume: &Volume,
    nodules: &[&ClassifiedCandidate],
    caption: &str,
) -> Result<(), PlotError> {
    let panels = panels(volume, nodules, caption);
    let columns = panels.len().clamp(1, PER_ROW);
    let rows = panels.len().div_ceil(PER_ROW).max(1);
    let size = (PANEL * columns as u32, (PANEL + HEADER) * rows as u32);
    let mut pixels = vec![0u8; size.0 as usize * size.1 as usize * 3];
    for (k, panel) in panels.iter().enumerate() {
        let origin = panel_origin(k);
        paint_slice(&mut pixels, size.0, origin, volume, panel.slice);
    }
    let text = text_available();
    write_png_over(path, size, pixels, |root| {
        panels
            .iter()
            .enumerate()
            .try_for_each(|(k, p)| draw_marks(root, volume, panel_origin(k), p, text))
    })
}

fn panels(volume: &Volume, nodules: &[&ClassifiedCandidate], caption: &str) -> Vec<Panel> {
    let slices = volume.shape[0];
    if nodules.is_empty() {
        return vec![Panel {
            slice: slices / 2,
            ring: None,
            lines: [
                caption.to_owned(),
                format!("slice {} of {slices}", slices / 2),
            ],
        }];
    }
    nodules
        .iter()
        .take(MAX_PANELS)
        .enumerate()
        .map(|(k, n)| {
            let [i, r, c] = n.candidate.center_irc;
            let slice = (i.round().max(0.0) as usize).min(slices - 1);
            // The ring holds a ball of the component's voxels, with room.
            let radius = (3.0 * n.candidate.voxels as f64 / (4.0 * std::f64::consts::PI)).cbrt();
            let malignant = n
                .p_malignant
                .map_or_else(String::new, |p| format!("  P(malignant) {p:.2}"));
            let [x, y, z] = n.candidate.center_xyz;
            Panel {
                slice,
                ring: Some(([r, c], 2.0 * radius + 4.0)),
                lines: [
                    format!("#{}  P(nodule) {:.2}{malignant}", k + 1, n.p_nodule),
                    format!("x {x:.1}  y {y:.1}  z {z:.1} mm  (slice {slice})"),
                ],
            }
        })
        .collect()
}

fn panel_origin(k: usize) -> (u32, u32) {
    let (row, col) = (k / PER_ROW, k % PER_ROW);
    (col as u32 * PANEL, row as u32 * (PANEL + HEADER) + HEADER)
}

/// Scale from slice voxels to panel pixels (the slice fits the panel).
fn scale(volume: &Volume) -> f64 {
    let [_, rows, cols] = volume.shape;
    f64::from(PANEL) / rows.max(cols) as f64
}

/// The slice in the lung window, nearest voxel per pixel, into the panel
/// at `origin` of a picture `width` pixels wide.
fn paint_slice(pixels: &mut [u8], width: u32, origin: (u32, u32), volume: &Volume, slice: usize) {
    let [_, rows, cols] = volume.shape;
    let s = scale(volume);
    let (lo, hi) = WINDOW_HU;
    for py in 0..PANEL {
        let r = (f64::from(py) / s) as usize;
        if r >= rows {
            break;
        }
        for px in 0..PANEL {
            let c = (f64::from(px) / s) as usize;
            if c >= cols {
                break;
            }
            let hu = f32::from(volume.get([slice, r, c]));
            let grey = ((hu - lo) / (hi - lo) * 255.0).clamp(0.0, 255.0) as u8;
            let at = ((origin.1 + py) as usize * width as usize + (origin.0 + px) as usize) * 3;
            pixels[at..at + 3].fill(grey);
        }
    }
}

fn draw_marks(
    root: &Root<'_>,
    volume: &Volume,
    origin: (u32, u32),
    panel: &Panel,
    text: bool,
) -> Result<(), String> {
    let s = scale(volume);
    let at = |v: f64, o: u32| o as i32 + (v * s).round() as i32;
    if let Some(([r, c], radius)) = panel.ring {
        let centre = (at(c + 0.5, origin.0), at(r + 0.5, origin.1));
        let ring = Circle::new(centre, (radius * s).max(6.0) as i32, RED.stroke_width(2));
        root.draw(&ring).map_err(|e| e.to_string())?;
    }
    if text {
        let style = (FONT_FAMILY, 15).into_font().color(&WHITE);
        for (k, line) in panel.lines.iter().enumerate() {
            let y = origin.1 as i32 - HEADER as i32 + 4 + 19 * k as i32;
            root.draw(&Text::new(line.as_str(), (origin.0 as i32 + 6, y), &style))
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}
