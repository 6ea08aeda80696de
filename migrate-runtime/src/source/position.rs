//! Lines counted forward through a text, so that locating every statement of a
//! file costs one pass over it, not one pass per statement.

/// A position in a text that moves forward: [`Cursor::line_at`] for increasing byte offsets
/// costs the distance from the previous offset (an earlier offset starts again from the top,
/// so every answer is right).
#[derive(Clone, Debug)]
pub(crate) struct Cursor<'a> {
    text: &'a str,
    first_line: u32,
    byte: usize,
    line: u32,
}

impl<'a> Cursor<'a> {
    /// At the start of `text`, whose first line is line `first_line` of its file.
    pub(crate) fn new(text: &'a str, first_line: u32) -> Self {
        Cursor {
            text,
            first_line,
            byte: 0,
            line: first_line,
        }
    }

    fn seek(&mut self, offset: usize) {
        if offset < self.byte {
            *self = Cursor::new(self.text, self.first_line);
        }
        let passed = &self.text.as_bytes()[self.byte..offset];
        self.line += passed.iter().filter(|&&b| b == b'\n').count() as u32;
        self.byte = offset;
    }

    /// The file line of byte `offset`.
    pub(crate) fn line_at(&mut self, offset: usize) -> u32 {
        self.seek(offset);
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_lines_forward_and_starts_again_when_asked_about_an_earlier_offset() {
        let text = "ab\né\n\nxyz";
        let mut cursor = Cursor::new(text, 5);
        for offset in [0, 1, 3, 6, 7, 9, 2, 8, 0, 10] {
            let before = &text[..offset];
            let line = 5 + before.matches('\n').count() as u32;
            assert_eq!(cursor.line_at(offset), line, "{offset}");
        }
    }
}
