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

/// Writes residents one at a time in `format` to `out`: CSV as it goes, XLSX when
/// finished (a workbook is a zip of the whole sheet). Nothing is written before the first
/// row or [`ResidentWriter::finish`], so the writer can be made on one thread and used on
/// another.
pub struct ResidentWriter<W: Write> {
    state: WriterState<W>,
}

enum WriterState<W: Write> {
    Start(ExportFormat, W),
    Csv(Box<csv::Writer<W>>),
    Xlsx { book: Box<rust_xlsxwriter::Workbook>, rows: u32, out: W },
    Done,
}

impl<W: Write> std::fmt::Debug for ResidentWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentWriter").finish_non_exhaustive()
    }
}

fn xlsx_error(error: rust_xlsxwriter::XlsxError) -> std::io::Error {
    std::io::Error::other(error.to_string())
}

impl<W: Write> ResidentWriter<W> {
    pub fn new(format: ExportFormat, out: W) -> ResidentWriter<W> {
        ResidentWriter { state: WriterState::Start(format, out) }
    }

    /// Writes the header once, on first use.
    fn begin(&mut self) -> std::io::Result<()> {
        if let WriterState::Start(..) = self.state {
            let WriterState::Start(format, out) = std::mem::replace(&mut self.state, WriterState::Done) else {
                unreachable!("matched above")
            };
            self.state = match format {
                ExportFormat::Csv => {
                    let mut writer = csv::Writer::from_writer(out);
                    writer.write_record(RESIDENT_HEADER)?;
                    WriterState::Csv(Box::new(writer))
                }
                ExportFormat::Xlsx => {
                    let mut book = rust_xlsxwriter::Workbook::new();
                    let sheet = book.add_worksheet();
                    for (c, name) in RESIDENT_HEADER.iter().enumerate() {
                        sheet.write_string(0, c as u16, *name).map_err(xlsx_error)?;
                    }
                    WriterState::Xlsx { book: Box::new(book), rows: 0, out }
                }
            };
        }
        Ok(())
    }

    pub fn write(&mut self, resident: &ResidentView) -> std::io::Result<()> {
        self.begin()?;
        match &mut self.state {
            WriterState::Csv(writer) => writer.write_record(cells(resident)).map_err(std::io::Error::from),
            WriterState::Xlsx { book, rows, .. } => {
                *rows = rows.checked_add(1).filter(|r| *r < 1_048_576).ok_or_else(|| {
                    std::io::Error::other("more rows than a spreadsheet holds (1,048,575): export as CSV")
                })?;
                let sheet = book.worksheet_from_index(0).map_err(xlsx_error)?;
                for (c, value) in cells(resident).iter().enumerate() {
                    sheet.write_string(*rows, c as u16, value).map_err(xlsx_error)?;
                }
                Ok(())
            }
            WriterState::Start(..) | WriterState::Done => Err(std::io::Error::other("the export is finished")),
        }
    }

    /// Writes what is left (the whole workbook, for XLSX), flushes, and gives the output back.
    pub fn finish(mut self) -> std::io::Result<W> {
        self.begin()?;
        match std::mem::replace(&mut self.state, WriterState::Done) {
            WriterState::Csv(writer) => writer.into_inner().map_err(|e| e.into_error()),
            WriterState::Xlsx { mut book, mut out, .. } => {
                out.write_all(&book.save_to_buffer().map_err(xlsx_error)?)?;
                out.flush()?;
                Ok(out)
            }
            WriterState::Start(..) | WriterState::Done => unreachable!("begin() left the writer started"),
        }
    }
}

impl ResidentWriter<Vec<u8>> {
    /// The bytes written since the last call, for sending while the export goes on (CSV
    /// as it goes; a workbook comes whole from [`ResidentWriter::finish`]).
    pub fn take_written(&mut self) -> std::io::Result<Vec<u8>> {
        if !matches!(self.state, WriterState::Csv(_)) {
            return Ok(Vec::new());
        }
        let WriterState::Csv(writer) = std::mem::replace(&mut self.state, WriterState::Done) else {
            unreachable!("matched above")
        };
        let written = writer.into_inner().map_err(|e| e.into_error())?;
        // The header is already out; the next writer goes on with rows.
        self.state = WriterState::Csv(Box::new(csv::Writer::from_writer(Vec::new())));
        Ok(written)
    }
}

/// Writes `residents` in `format` to `out`.
pub fn write_residents(format: ExportFormat, residents: &[ResidentView], out: &mut dyn Write) -> std::io::Result<()> {
    let mut writer = ResidentWriter::new(format, out);
    for resident in residents {
        writer.write(resident)?;
    }
    writer.finish().map(|_| ())
}
