//! Rectangles with overflow-checked arithmetic: every rectangle may come from a hostile guest.

/// A rectangle in pixels, as guests send them (x, y, width, height).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

impl Rect {
    pub const fn new(x: u32, y: u32, width: u32, height: u32) -> Self {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    /// The whole of a `width` x `height` surface.
    pub const fn full(width: u32, height: u32) -> Self {
        Rect {
            x: 0,
            y: 0,
            width,
            height,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.width == 0 || self.height == 0
    }

    /// Right edge, or `None` if it overflows.
    pub fn right(&self) -> Option<u32> {
        self.x.checked_add(self.width)
    }

    /// Bottom edge, or `None` if it overflows.
    pub fn bottom(&self) -> Option<u32> {
        self.y.checked_add(self.height)
    }

    /// Whether the rectangle lies entirely inside a `width` x `height` surface, without overflow.
    pub fn fits_in(&self, width: u32, height: u32) -> bool {
        matches!((self.right(), self.bottom()), (Some(r), Some(b)) if r <= width && b <= height)
    }

    /// The smallest rectangle holding both (edges saturate rather than overflow).
    pub fn bounding_box(&self, other: &Rect) -> Rect {
        let (x0, y0) = (self.x.min(other.x), self.y.min(other.y));
        let x1 = self
            .x
            .saturating_add(self.width)
            .max(other.x.saturating_add(other.width));
        let y1 = self
            .y
            .saturating_add(self.height)
            .max(other.y.saturating_add(other.height));
        Rect::new(x0, y0, x1 - x0, y1 - y0)
    }

    /// The overlap of two rectangles, or `None` if they do not overlap.
    pub fn intersect(&self, other: &Rect) -> Option<Rect> {
        let x0 = self.x.max(other.x);
        let y0 = self.y.max(other.y);
        let x1 = self.right()?.min(other.right()?);
        let y1 = self.bottom()?.min(other.bottom()?);
        (x1 > x0 && y1 > y0).then(|| Rect::new(x0, y0, x1 - x0, y1 - y0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fits_in_rejects_overflow_and_out_of_bounds() {
        assert!(Rect::new(0, 0, 64, 64).fits_in(64, 64));
        assert!(!Rect::new(1, 0, 64, 64).fits_in(64, 64));
        assert!(!Rect::new(u32::MAX, 0, 2, 1).fits_in(u32::MAX, 1));
        assert!(!Rect::new(0, u32::MAX - 1, 1, 5).fits_in(10, u32::MAX));
    }

    #[test]
    fn bounding_box_holds_both() {
        let (a, b) = (Rect::new(2, 3, 4, 5), Rect::new(10, 1, 2, 2));
        assert_eq!(a.bounding_box(&b), Rect::new(2, 1, 10, 7));
        assert_eq!(b.bounding_box(&a), Rect::new(2, 1, 10, 7));
        let edge = Rect::new(u32::MAX - 1, 0, 5, 1);
        assert_eq!(edge.bounding_box(&a), Rect::new(2, 0, u32::MAX - 2, 8));
    }

    #[test]
    fn intersect_clips() {
        let a = Rect::new(0, 0, 10, 10);
        assert_eq!(
            a.intersect(&Rect::new(5, 5, 10, 10)),
            Some(Rect::new(5, 5, 5, 5))
        );
        assert_eq!(a.intersect(&Rect::new(10, 0, 5, 5)), None);
    }
}
