package sim

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"

	"github.com/shopspring/decimal"
)

// The simulator's top-up token scheme (ours; real meters use the vendor's).
//
// A token is a 64-bit number written as 20 decimal digits (zero padded):
//
//	bits 63..47  amount in pence (17 bits: up to £1,310.71)
//	bits 46..23  token id (24 bits, unique per token)
//	bits 22..0   MAC: the first 23 bits of HMAC-SHA256(key, serial ‖ amount ‖ id)
//
// The MAC binds a token to one meter's key and serial: a token for another
// meter, or with a digit changed, fails the check. The meter remembers the
// ids it has credited, so a replay is refused.
const (
	amountBits = 17
	idBits     = 24
	macBits    = 23
	// MaxTokenAmount is the largest amount a token can carry.
	maxPence = 1<<amountBits - 1
)

// Token errors, mapped to NAK codes by the meter.
var (
	ErrTokenMalformed = errors.New("token is not 20 digits of a valid value")
	ErrTokenInvalid   = errors.New("token does not verify for this meter")
	ErrTokenUsed      = errors.New("token has been used")
)

// Token is a decoded token.
type Token struct {
	Pence int64
	ID    uint32
}

// Amount returns the token's value in GBP.
func (t Token) Amount() decimal.Decimal { return decimal.New(t.Pence, -2) }

// VendToken makes a token worth amount (GBP, whole pence, above 0 and at
// most £1,310.71) for the meter with serial and hex key, with a random id.
func VendToken(serial, keyHex string, amount decimal.Decimal) (string, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return vend(serial, keyHex, amount, binary.BigEndian.Uint32(b[:])&(1<<idBits-1))
}

func vend(serial, keyHex string, amount decimal.Decimal, id uint32) (string, error) {
	key, err := hex.DecodeString(keyHex)
	if err != nil || len(key) == 0 {
		return "", fmt.Errorf("meter key %q is not hex", keyHex)
	}
	pence := amount.Shift(2)
	if !pence.Equal(pence.Truncate(0)) || !pence.IsPositive() || pence.IntPart() > maxPence {
		return "", fmt.Errorf("amount %s must be whole pence between 0.01 and 1310.71", amount)
	}
	p := uint64(pence.IntPart())
	v := p<<(idBits+macBits) | uint64(id)<<macBits | mac(key, serial, p, id)
	return fmt.Sprintf("%020d", v), nil
}

func mac(key []byte, serial string, pence uint64, id uint32) uint64 {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(serial))
	var b [12]byte
	binary.BigEndian.PutUint64(b[:8], pence)
	binary.BigEndian.PutUint32(b[8:], id)
	m.Write(b[:])
	sum := m.Sum(nil)
	return uint64(binary.BigEndian.Uint32(sum)) >> (32 - macBits)
}

// ParseToken checks a token against a meter's serial and key.
func ParseToken(tok, serial string, key []byte) (Token, error) {
	if len(tok) != 20 {
		return Token{}, ErrTokenMalformed
	}
	v, err := strconv.ParseUint(tok, 10, 64)
	if err != nil {
		return Token{}, ErrTokenMalformed
	}
	p := v >> (idBits + macBits)
	id := uint32(v>>macBits) & (1<<idBits - 1)
	if p == 0 {
		return Token{}, ErrTokenMalformed
	}
	if !hmac.Equal(u64(mac(key, serial, p, id)), u64(v&(1<<macBits-1))) {
		return Token{}, ErrTokenInvalid
	}
	return Token{Pence: int64(p), ID: id}, nil
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }
