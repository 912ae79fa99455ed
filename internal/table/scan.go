package table

// Scan calls fn for live entries starting at cursor (0 starts at the
// beginning) until fn returns false or the table ends, and returns the
// cursor to resume from, 0 when every entry was visited. It holds no lock
// between calls, so a listing taken while the table changes is approximate:
// a deletion or a shard's growth moves entries to other slots, so an entry
// may be missed or visited twice when others are deleted or stored during
// the listing. A table that does not change is listed exactly once. fn runs
// under a shard's lock and must not call the table.
func (t *Table) Scan(cursor uint64, fn func(Entry) bool) uint64 {
	now := t.clock()
	shard, pos := int(cursor>>32), int(uint32(cursor))
	for ; shard < len(t.shards); shard, pos = shard+1, 0 {
		s := t.shards[shard]
		s.mu.Lock()
		s.tick(now)
		for ; pos < len(s.slots); pos++ {
			if !s.slots[pos].used() || s.expiry(&s.slots[pos]) != live {
				continue
			}
			if !fn(t.export(s, int32(pos))) {
				s.mu.Unlock()
				return next(shard, pos+1, len(t.shards))
			}
		}
		s.mu.Unlock()
	}
	return 0
}

// next encodes the cursor after position pos of shard; 0 means the end.
func next(shard, pos, shards int) uint64 {
	if shard >= shards {
		return 0
	}
	return uint64(shard)<<32 | uint64(pos)
}
