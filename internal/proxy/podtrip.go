package proxy

import (
	"bytes"
	"io"
	"net/http"

	"github.com/valyala/fasthttp"
)

// roundTripPod sends a request of the HTTP/2 front end to a pod that
// speaks HTTP/1.1, in cleartext or over TLS, through the pod's own
// connection pool (podClient): the one HTTP/1.1 clients' requests use, so
// a pod has one pool whichever protocol its clients speak, and a stream
// costs no goroutine of net/http's client. The answer's body streams as
// podClient streams it, and its trailer fields arrive with its end.
func roundTripPod(pd *pod, out *http.Request) (*http.Response, error) {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	h := &req.Header
	h.DisableNormalizing() // the names are net/http's canonical ones
	h.SetMethod(out.Method)
	h.SetRequestURI(out.URL.RequestURI())
	host := out.Host
	if host == "" {
		host = out.URL.Host
	}
	h.SetHost(host)
	req.UseHostHeader = true
	for name, values := range out.Header {
		for _, v := range values {
			h.Add(name, v)
		}
	}
	if out.Body != nil && out.Body != http.NoBody {
		req.SetBodyStream(out.Body, int(max(out.ContentLength, -1)))
	}
	if out.Method == http.MethodHead {
		resp.SkipBody = true
	}
	if err := pd.client.DoContext(out.Context(), req, resp); err != nil {
		fasthttp.ReleaseResponse(resp)
		return nil, err
	}
	res := &http.Response{
		Status:        http.StatusText(resp.StatusCode()),
		StatusCode:    resp.StatusCode(),
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        make(http.Header, resp.Header.Len()),
		ContentLength: max(int64(resp.Header.ContentLength()), -1),
		Request:       out,
	}
	for name, v := range resp.Header.All() {
		res.Header.Add(string(name), string(v))
	}
	res.Header.Del("Content-Length")
	res.Header.Del("Transfer-Encoding")
	for name := range resp.Header.Trailers() {
		if res.Trailer == nil {
			res.Trailer = http.Header{}
		}
		res.Trailer[http.CanonicalHeaderKey(string(name))] = nil
	}
	var body io.Reader
	if resp.IsBodyStream() {
		body = resp.BodyStream()
	} else {
		body = bytes.NewReader(resp.Body())
	}
	res.Body = &podBody{r: body, resp: resp, res: res}
	return res, nil
}

// podBody is a pod's answer's body as net/http reads it: at its end the
// trailer fields are copied into the response; Close gives the pod's
// connection back (or closes it, when the body was not read to its end).
type podBody struct {
	r    io.Reader
	resp *fasthttp.Response
	res  *http.Response
	done bool
}

func (b *podBody) Read(p []byte) (int, error) {
	if b.resp == nil {
		return 0, io.ErrClosedPipe
	}
	n, err := b.r.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		for name := range b.res.Trailer {
			for _, v := range b.resp.Header.PeekAll(name) {
				b.res.Trailer.Add(name, string(v))
			}
		}
	}
	return n, err
}

func (b *podBody) Close() error {
	if b.resp == nil {
		return nil
	}
	b.resp.CloseBodyStream()
	fasthttp.ReleaseResponse(b.resp)
	b.resp = nil
	return nil
}
