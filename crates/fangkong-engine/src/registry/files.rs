//! Residents written to CSV or XLSX for an export (the rows as the caller may see them).

use std::io::Write;

use fangkong_core::registry::format_date;

use super::ResidentView;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

/// The export's columns (the import's names, so an export can be re-imported by those
/// who may see whole numbers).
pub const RESIDENT_HEADER: [&str; 13] = [
    "code",
    "name",
    "sex",
    "birth_date",
    "document",
    "id_number",
    "phone",
    "origin_province",
    "origin_city",
    "employer",
    "unit",
    "grid",
    "community",
];

fn cells(r: &ResidentView) -> [String; 13] {
    let opt = |v: &Option<String>| v.clone().unwrap_or_default();
    [
        r.code.clone(),
        r.name.clone(),
        r.sex.as_str().to_string(),
        format_date(r.birth),
        r.document.as_str().to_string(),
        r.id_number.clone(),
        opt(&r.phone),
        opt(&r.origin_province),
        opt(&r.origin_city),
        opt(&r.employer),
        opt(&r.unit),
        r.grid.clone(),
        r.community.clone(),
    ]
}

/// Writes `residents` in `format` to `out`.
pub fn write_residents(format: ExportFormat, residents: &[ResidentView], out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        ExportFormat::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(RESIDENT_HEADER)?;
            for r in residents {
                writer.write_record(cells(r))?;
            }
            writer.flush()
        }
        ExportFormat::Xlsx => {
            let mut book = rust_xlsxwriter::Workbook::new();
            let sheet = book.add_worksheet();
            let fail = |e: rust_xlsxwriter::XlsxError| std::io::Error::other(e.to_string());
            for (c, name) in RESIDENT_HEADER.iter().enumerate() {
                sheet.write_string(0, c as u16, *name).map_err(fail)?;
            }
            for (i, r) in residents.iter().enumerate() {
                let row = u32::try_from(i + 1).map_err(|_| std::io::Error::other("too many rows for a sheet"))?;
                for (c, value) in cells(r).iter().enumerate() {
                    sheet.write_string(row, c as u16, value).map_err(fail)?;
                }
            }
            out.write_all(&book.save_to_buffer().map_err(fail)?)
        }
    }
}
