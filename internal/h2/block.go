package h2

import (
	"errors"
	"strings"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// headerBlock reads the peer's header blocks, the server's and the
// client's alike: the HEADERS frame that opens one and the CONTINUATION
// frames after it, each fragment decoded as it comes, with the limits and
// errors of x/net's frame reader (Framer.ReadMetaHeaders). The block read
// and its fields are kept for the next one: what a stream keeps of them,
// it copies. Guarded by the connection's mu.
type headerBlock struct {
	dec   *hpack.Decoder
	limit uint32 // the header list size allowed
	meta  http2.MetaHeadersFrame
	// The block being read: its fields so far, what is left of the
	// header list's allowance for fields and for Trailer fields, whether
	// a regular field came, and the first invalid field.
	fields                []hpack.HeaderField
	remain, remainTrailer uint32
	sawRegular            bool
	invalid               error
}

var (
	errPseudoAfterRegular = errors.New("pseudo header field after regular")
	errMixedPseudo        = errors.New("mix of request and response pseudo headers")
)

func (b *headerBlock) init(limit uint32) {
	b.limit = limit
	b.dec = hpack.NewDecoder(4096, nil)
	b.dec.SetMaxStringLength(int(limit))
	b.dec.SetEmitFunc(b.emit)
}

// start begins the block f opens; the block is read once read returns it.
func (b *headerBlock) start(f *http2.HeadersFrame) {
	b.meta = http2.MetaHeadersFrame{HeadersFrame: f}
	clear(b.fields)
	b.fields = b.fields[:0]
	b.remain, b.remainTrailer = b.limit, b.limit
	b.sawRegular, b.invalid = false, nil
	b.dec.SetEmitEnabled(true)
}

// read decodes frag, the block's next fragment; end: the block ends with
// it. It returns the block once it ended, or the client's error.
func (b *headerBlock) read(frag []byte, end bool) (*http2.MetaHeadersFrame, error) {
	// A fragment far longer than the header list left to take, or one
	// after an invalid field, is not decoded: the connection closes, as
	// x/net's reader closes it.
	if int64(len(frag)) > 2*int64(b.remain+b.remainTrailer) || b.invalid != nil {
		return nil, http2.ConnectionError(http2.ErrCodeProtocol)
	}
	if _, err := b.dec.Write(frag); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	if !end {
		return nil, nil
	}
	if err := b.dec.Close(); err != nil {
		return nil, http2.ConnectionError(http2.ErrCodeCompression)
	}
	id := b.meta.StreamID
	if b.invalid != nil {
		return nil, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: b.invalid}
	}
	b.meta.Fields = b.fields
	if err := checkPseudos(b.meta.PseudoFields()); err != nil {
		return nil, http2.StreamError{StreamID: id, Code: http2.ErrCodeProtocol, Cause: err}
	}
	return &b.meta, nil
}

// emit takes a decoded field: an invalid one, or one past the header
// list's size, stops the block's fields there.
func (b *headerBlock) emit(hf hpack.HeaderField) {
	if !httpguts.ValidHeaderFieldValue(hf.Value) {
		b.invalid = errors.New("invalid value of field " + hf.Name)
	}
	if strings.HasPrefix(hf.Name, ":") {
		if b.sawRegular {
			b.invalid = errPseudoAfterRegular
		}
	} else {
		b.sawRegular = true
		if !validFieldName(hf.Name) {
			b.invalid = errors.New("invalid field name")
		}
	}
	if b.invalid != nil {
		b.dec.SetEmitEnabled(false)
		return
	}
	remain, size := &b.remain, hf.Size()
	if hf.Name == "trailer" {
		// Each field it announces counts as one of the list.
		n := uint32(strings.Count(hf.Value, ",") + 1)
		remain, size = &b.remainTrailer, uint32(len(hf.Value))-n+1+n*hpack.HeaderField{}.Size()
	}
	if size > *remain {
		b.dec.SetEmitEnabled(false)
		b.meta.Truncated = true
		b.remain, b.remainTrailer = 0, 0
		return
	}
	*remain -= size
	b.fields = append(b.fields, hf)
}

// validFieldName reports a field name as HTTP/2 allows it on the wire:
// a token, in lower case.
func validFieldName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if !httpguts.IsTokenRune(r) || 'A' <= r && r <= 'Z' {
			return false
		}
	}
	return true
}

// checkPseudos checks a block's pseudo-header fields: known ones, each
// once, of a request or of a response.
func checkPseudos(pseudo []hpack.HeaderField) error {
	var request, response bool
	for i, hf := range pseudo {
		switch hf.Name {
		case ":method", ":path", ":scheme", ":authority", ":protocol":
			request = true
		case ":status":
			response = true
		default:
			return errors.New("invalid pseudo-header " + hf.Name)
		}
		for _, prev := range pseudo[:i] {
			if hf.Name == prev.Name {
				return errors.New("duplicate pseudo-header " + hf.Name)
			}
		}
	}
	if request && response {
		return errMixedPseudo
	}
	return nil
}
