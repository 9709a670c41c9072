package main

import (
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/flows-energy/flows/emop"
	"github.com/flows-energy/flows/internal/cli"
	"github.com/spf13/cobra"
)

func newFrameCmd() *cobra.Command {
	frame := &cobra.Command{Use: "frame", Short: "Decode and encode EMOP frames (no meter needed)"}
	decode := &cobra.Command{
		Use:     "decode HEX",
		Example: cli.Example("emop frame decode 7e11000000000021ae42050160010000c02f"),
		Short:   "Decode one frame and print it as JSON",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := parseHex(strings.Join(args, ""))
			if err != nil {
				return err
			}
			out, err := describeFrame(b)
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		},
	}
	var write string
	var seq uint8
	var src, dst string
	encode := &cobra.Command{
		Use:     "encode --object NAME|HEX [--write PAYLOAD_HEX]",
		Example: cli.Example("emop frame encode --object prepay_balance", "emop frame encode --object ffc802 --write 01"),
		Short:   "Print a request frame as hex: a read, or a write with --write",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			objArg, _ := cmd.Flags().GetString("object")
			id, _, err := emop.ParseObject(objArg)
			if err != nil {
				return fmt.Errorf("--object: %w", err)
			}
			if seq > 7 {
				return fmt.Errorf("--seq: %d is outside 0..7", seq)
			}
			srcAddr, err := parseAddr("--src", src)
			if err != nil {
				return err
			}
			dstAddr, err := parseAddr("--dest", dst)
			if err != nil {
				return err
			}
			data := emop.ReadRequest(id)
			if cmd.Flags().Changed("write") {
				p, err := parseHex(write)
				if err != nil && write != "" {
					return fmt.Errorf("--write: %w", err)
				}
				data = emop.WriteRequest(id, p)
			}
			f := emop.Frame{DestAddr: dstAddr, SrcAddr: srcAddr, Control: emop.Control(seq, 0), Data: data}
			b, err := f.AppendTo(nil)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), hex.EncodeToString(b))
			return nil
		},
	}
	encode.Flags().String("object", "", "object name (e.g. prepay_balance) or hex id (ffc802)")
	encode.Flags().StringVar(&write, "write", "", "payload to write, as hex")
	encode.Flags().Uint8Var(&seq, "seq", 1, "sequence number 0..7")
	encode.Flags().StringVar(&src, "src", "21ae42", "source address (hex, 24 bits)")
	encode.Flags().StringVar(&dst, "dest", "000000", "destination address (hex, 24 bits; 000000 = any meter)")
	_ = encode.MarkFlagRequired("object")
	frame.AddCommand(decode, encode)
	return frame
}

// parseHex accepts hex with optional 0x, spaces and colons, as logs print it.
func parseHex(s string) ([]byte, error) {
	s = strings.NewReplacer(" ", "", ":", "", "\n", "", "\t", "").Replace(strings.TrimPrefix(strings.TrimSpace(strings.ToLower(s)), "0x"))
	if s == "" {
		return nil, errors.New("no hex given")
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("not hex: %v", err)
	}
	return b, nil
}

func parseAddr(flag, s string) (uint32, error) {
	b, err := parseHex(s)
	if err != nil || len(b) != 3 {
		return 0, fmt.Errorf("%s: %q is not a 6-digit hex address", flag, s)
	}
	return uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]), nil
}

// frameJSON is the output of emop frame decode (DESIGN.md §3.3).
type frameJSON struct {
	Length      int     `json:"length"`
	DestType    byte    `json:"dest_type"`
	DestAddress string  `json:"dest_address"`
	SrcType     byte    `json:"src_type"`
	SrcAddress  string  `json:"src_address"`
	Control     byte    `json:"control"`
	Sequence    uint8   `json:"sequence"`
	AckNak      uint8   `json:"ack_nak"`
	AckNakText  string  `json:"ack_nak_meaning"`
	CRC         string  `json:"crc"`
	CRCOK       bool    `json:"crc_ok"`
	CRCExpected string  `json:"crc_expected,omitempty"`
	Format      byte    `json:"format"`
	ObjectID    *string `json:"object_id"`
	ObjectName  *string `json:"object_name"`
	RW          *byte   `json:"rw"`
	PayloadHex  string  `json:"payload_hex"`
	Value       any     `json:"value"`
	ValueError  string  `json:"value_error,omitempty"`
}

func describeFrame(b []byte) (*frameJSON, error) {
	f, crcErr, err := decodeOneFrame(b)
	if err != nil {
		return nil, err
	}
	out := frameHeader(f, b, crcErr)
	verr := describeData(f, out)
	if verr != nil {
		out.Value, out.ValueError = nil, verr.Error()
	}
	return out, nil
}

// decodeOneFrame decodes b, which must hold exactly one frame. A bad CRC is
// not an error: it is returned for the output to report.
func decodeOneFrame(b []byte) (emop.Frame, *emop.CRCError, error) {
	f, n, err := emop.DecodeFrame(b)
	var crcErr *emop.CRCError
	switch {
	case errors.Is(err, emop.ErrTruncated):
		if len(b) >= 2 {
			return f, nil, fmt.Errorf("truncated frame: the length byte says %d bytes on the wire, %d given", int(b[1])+1, len(b))
		}
		return f, nil, fmt.Errorf("truncated frame: %d bytes", len(b))
	case errors.As(err, &crcErr):
	case err != nil:
		return f, nil, err
	}
	if n != len(b) {
		return f, nil, fmt.Errorf("%d bytes follow the frame (the length byte says %d bytes on the wire): paste one frame", len(b)-n, n)
	}
	return f, crcErr, nil
}

// frameHeader fills in everything but the decoded data.
func frameHeader(f emop.Frame, b []byte, crcErr *emop.CRCError) *frameJSON {
	out := &frameJSON{
		Length: f.Length(), DestType: f.DestType, DestAddress: fmt.Sprintf("%06x", f.DestAddr),
		SrcType: f.SrcType, SrcAddress: fmt.Sprintf("%06x", f.SrcAddr), Control: f.Control,
		Sequence: f.Sequence(), AckNak: f.AckNak(), AckNakText: emop.NakMeaning(f.AckNak()),
		CRC: fmt.Sprintf("%04x", emop.FrameCRC(b)), CRCOK: crcErr == nil, Format: f.Data[0],
		PayloadHex: hex.EncodeToString(f.Data[1:]),
	}
	if crcErr != nil {
		out.CRCExpected = fmt.Sprintf("%04x", crcErr.Want)
	}
	return out
}

// setObject records id, and its name when known, in out.
func (out *frameJSON) setObject(id emop.ObjectID) *emop.Object {
	s := id.String()
	out.ObjectID = &s
	o, ok := emop.Lookup(id)
	if ok {
		out.ObjectName = &o.Name
		return o
	}
	return nil
}

// describeData decodes the data field by its format into out, returning
// why the value could not be decoded.
func describeData(f emop.Frame, out *frameJSON) error {
	switch f.Data[0] {
	case emop.FormatDefault:
		return describeRecord(f, out)
	case emop.FormatEventLog:
		return describeEventLog(f, out)
	case emop.FormatProfileLog1, emop.FormatProfileLog2:
		return describeProfileLog(f, out)
	}
	return nil
}

func describeRecord(f emop.Frame, out *frameJSON) error {
	rec, err := emop.ParseRecord(f.Data)
	if err != nil {
		return err
	}
	o := out.setObject(rec.Object)
	rw := byte(0)
	if rec.Write {
		rw = 1
	}
	out.RW, out.PayloadHex = &rw, hex.EncodeToString(rec.Payload)
	var verr error
	if o != nil && f.AckNak() == 0 {
		out.Value, verr = emop.DecodeValue(o, rec.Payload)
	}
	return verr
}

func describeEventLog(f emop.Frame, out *frameJSON) error {
	var verr error
	if len(f.Data) == 5 {
		idx, err := emop.ParseEventLogRequest(f.Data)
		out.setObject(emop.ObjEventLog)
		out.Value, verr = map[string]any{"index": idx}, err
	} else {
		idx, evs, err := emop.ParseEventLogResponse(f.Data)
		out.Value, verr = map[string]any{"index": idx, "events": evs}, err
	}
	return verr
}

func describeProfileLog(f emop.Frame, out *frameJSON) error {
	var verr error
	if len(f.Data) == 5 {
		_, ts, err := emop.ParseProfileLogRequest(f.Data)
		out.Value, verr = map[string]any{"from": ts.Format(time.RFC3339)}, err
	} else if f.Data[0] == emop.FormatProfileLog1 {
		ts, recs, err := emop.ParseProfileLog1Response(f.Data)
		out.Value, verr = map[string]any{"from": ts.Format(time.RFC3339), "records": recs}, err
	} else {
		// Single or twin element layout cannot be told from the bytes;
		// show both readings.
		ts, single, err := emop.ParseProfileLog2Response(f.Data, false)
		_, twin, _ := emop.ParseProfileLog2Response(f.Data, true)
		out.Value, verr = map[string]any{"from": ts.Format(time.RFC3339), "records_single_element": single, "records_twin_element": twin}, err
	}
	return verr
}
