package http

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/url"
)

// A dashboard action redirects to the page it came from with its outcome
// in the query ("?msg=…"), so a reload or a shared link shows it. The
// message is signed with the server's secret ("&sig=…") and shown only
// when the signature holds: a link crafted elsewhere ("?msg=Call 0800 …
// to reverify your token") would otherwise render its text in Flows'
// own layout, as if Flows said it.

// flashSig is the signature of msg under the server's secret.
func (s *Server) flashSig(msg string) string {
	mac := hmac.New(sha256.New, s.cfg.JWTSecret)
	mac.Write([]byte("flows-dashboard-flash\x00"))
	mac.Write([]byte(msg))
	return hex.EncodeToString(mac.Sum(nil)[:16])
}

// redirectWithFlash redirects to path with msg as its signed flash.
func (s *Server) redirectWithFlash(w http.ResponseWriter, r *http.Request, path, msg string) {
	q := url.Values{"msg": {msg}, "sig": {s.flashSig(msg)}}
	http.Redirect(w, r, path+"?"+q.Encode(), http.StatusSeeOther)
}

// flash is the request's flash message when Flows signed it, else "".
func (s *Server) flash(r *http.Request) string {
	q := r.URL.Query()
	msg, sig := q.Get("msg"), q.Get("sig")
	if msg == "" || len(s.cfg.JWTSecret) == 0 || !hmac.Equal([]byte(sig), []byte(s.flashSig(msg))) {
		return ""
	}
	return msg
}
