//! The lines of a results object being built: bytes to compress, with
//! output frames ([`OutputFrame`]) spliced between them.
//!
//! Compressed, a buffer is a zstd stream: the bytes between two frames
//! become a frame of their own, the spliced frames go in as they are, in
//! order, so the object decompresses to the lines as written. A buffer
//! with no frames is compressed in one call, exactly as before frames
//! existed (zstd then matches across the whole batch).
//!
//! Invariant: `frames` are in order of their place, and every place is at
//! most `bytes.len()`.

use super::frame::{OutputFrame, compress};

/// A results object's lines, uncompressed but for spliced frames.
#[derive(Debug, Default)]
pub(crate) struct ResultsBuffer {
    /// Everything but the frames.
    bytes: Vec<u8>,
    /// Each frame and where it goes in `bytes`.
    frames: Vec<(usize, OutputFrame)>,
    /// The frames' uncompressed length, in all.
    framed_len: usize,
}

impl ResultsBuffer {
    /// The bytes to append lines to.
    pub(crate) fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Append `frame`, after the bytes appended so far.
    pub(crate) fn splice(&mut self, frame: OutputFrame) {
        self.framed_len += frame.rendered_len();
        self.frames.push((self.bytes.len(), frame));
    }

    /// The uncompressed length of the lines.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len() + self.framed_len
    }

    /// Empty, keeping the allocation.
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.frames.clear();
        self.framed_len = 0;
    }

    /// The lines as a zstd stream, compressed at `level` but for the
    /// spliced frames: the stream's parts, in order. They are handed to the
    /// store as they are: copied into one buffer, the frames of a warm
    /// replay's object (megabytes) cost a copy and the page faults of the
    /// buffer's fresh memory, a tenth of its CPU (docs/performance.md).
    pub(crate) fn compress(&self, level: i32) -> std::io::Result<Vec<bytes::Bytes>> {
        if self.frames.is_empty() {
            return Ok(vec![zstd::bulk::compress(&self.bytes, level)?.into()]);
        }
        let mut parts = Vec::with_capacity(2 * self.frames.len() + 1);
        let mut start = 0;
        for (place, frame) in &self.frames {
            if *place > start {
                parts.push(compress(&self.bytes[start..*place], level).into());
            }
            parts.push(frame.compressed());
            start = *place;
        }
        if start < self.bytes.len() {
            parts.push(compress(&self.bytes[start..], level).into());
        }
        Ok(parts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::Output;
    use crate::test_support::doc;

    fn rendered(output: &Output) -> Vec<u8> {
        let mut out = Vec::new();
        super::super::line::write_output(output.record().unwrap(), output.is_json(), &mut out);
        out
    }

    fn frame(output: &Output, level: i32) -> OutputFrame {
        OutputFrame::of(output.record().unwrap(), output.is_json(), level)
    }

    /// Frames spliced between bytes decompress, with them, to the lines
    /// as if every output had been written out; the length counts both.
    #[test]
    fn spliced_frames_decompress_in_place() {
        let outputs = [
            Output::new(doc("application/json", b"{\"text\": \"a page\"}")),
            Output::new(doc("text/plain", "line\nbreak".repeat(100).as_bytes())),
        ];
        let mut buffer = ResultsBuffer::default();
        let mut expected = Vec::new();
        for (head, output) in ["{\"id\":1,\"outputs\":[", "]}\n{\"id\":2,\"outputs\":["]
            .iter()
            .zip(&outputs)
        {
            buffer.bytes_mut().extend_from_slice(head.as_bytes());
            expected.extend_from_slice(head.as_bytes());
            buffer.splice(frame(output, 3));
            expected.extend_from_slice(&rendered(output));
        }
        // Two frames in a row, and bytes after the last.
        buffer.splice(frame(&outputs[0], -1));
        expected.extend_from_slice(&rendered(&outputs[0]));
        buffer.bytes_mut().extend_from_slice(b"]}\n");
        expected.extend_from_slice(b"]}\n");
        assert_eq!(buffer.len(), expected.len());
        let compressed = buffer.compress(1).unwrap().concat();
        assert_eq!(zstd::decode_all(compressed.as_slice()).unwrap(), expected);
        buffer.clear();
        assert_eq!(buffer.len(), 0);
        assert_eq!(
            buffer.compress(1).unwrap(),
            [zstd::bulk::compress(b"", 1).unwrap()]
        );
    }

    /// Without frames, the object is what one call over the lines makes.
    #[test]
    fn without_frames_the_lines_are_one_frame() {
        let mut buffer = ResultsBuffer::default();
        buffer
            .bytes_mut()
            .extend_from_slice(&b"{\"id\":1}\n".repeat(50));
        assert_eq!(
            buffer.compress(1).unwrap(),
            [zstd::bulk::compress(&b"{\"id\":1}\n".repeat(50), 1).unwrap()]
        );
    }
}
