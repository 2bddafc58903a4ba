"""Treadmill Data records split over notifications (the More Data bit), put back together."""

from __future__ import annotations

from treadmill.ftms import TreadmillData, merge_treadmill_data

# The parts of one split record are sent back to back (the same or the next connection
# events, tens of ms apart); records come at 1-4 Hz. A part that waited longer than this for
# its continuation belongs to a record whose end was lost, not to what arrives now.
DEFAULT_CONTINUATION_S = 0.5


class RecordAssembler:
    """Turns decoded Treadmill Data notifications into whole records; pure (no I/O, no clock of
    its own: the caller passes the arrival time). Never raises.

    FTMS flag bit 0 ("More Data") = 1: no instantaneous speed here, the record continues in the
    next notification; the part with More Data = 0 carries the speed and ends it. `feed` holds
    the first part(s) back and returns the whole record with the last part: one sample, the
    last part's speed, the union of the fields (the later part wins where both carry one).

    When a record's end never comes, its first part is dropped ("orphaned"), never emitted:
    it has no speed, and the safety layer must not see half a record, nor a speed made up from
    an older one. That happens when
    - the next part comes after more than `continuation_s` (a lost end, then a silence): the
      old part is dropped and the new notification is taken on its own;
    - another More Data = 1 part comes that carries a field the held one already has (a new
      record has begun): the old part is dropped and the new one is held. A More Data = 1
      part with only new fields is a record in three or more parts (FTMS allows that): it is
      added to the held one.
    Nothing a later notification carries is ever lost. A machine that never sends the end of
    its records produces no samples at all (and a rising `orphans` count): the same as silence,
    which the safety layer already handles as "no reading"."""

    def __init__(self, continuation_s: float = DEFAULT_CONTINUATION_S) -> None:
        self.continuation_s = continuation_s
        self._pending: TreadmillData | None = None
        self._pending_t = 0.0
        self.orphans = 0  # first parts dropped because their record's end never came

    @property
    def pending(self) -> TreadmillData | None:
        """The part(s) held back, waiting for the notification that ends the record."""
        return self._pending

    def reset(self) -> None:
        """Forget a held part (a new connection: its end will never come on this link)."""
        self._pending = None

    def feed(self, data: TreadmillData, t: float) -> TreadmillData | None:
        """The whole record `data` completes, `data` itself if it was not split, or None if it
        is a part without speed whose record continues in the next notification."""
        held = self._take_pending(t)
        if not data.more_data:
            return data if held is None else merge_treadmill_data(held, data)
        if held is not None:
            if held.carried() & data.carried():
                self.orphans += 1  # a new record began: the held one lost its end
            else:
                data = merge_treadmill_data(held, data)
        self._pending, self._pending_t = data, t
        return None

    def _take_pending(self, t: float) -> TreadmillData | None:
        held, self._pending = self._pending, None
        if held is not None and t - self._pending_t > self.continuation_s:
            self.orphans += 1
            return None
        return held
