// Package codec reads and writes ISO 8583 messages: dialects, framing and a
// masked dump for people.
//
// A Dialect is one wire format: the MTI version digit and a table of field
// definitions (class, length, prefix, encoding, masking). The table is the
// single source for two codecs: this package's Message, which decodes and
// encodes without allocating and is what the switch runs on, and the
// moov-io/iso8583 MessageSpec returned by Dialect.Spec, the reference encoder
// that tests and fuzz targets hold Message to. ISO87ASCII is the ISO
// 8583:1987 ASCII dialect spoken by the POS, kiosk, web and hotline channels.
//
// Data enters as bytes: a FrameReader cuts a stream into frames (2-byte
// big-endian length header), Message.Unpack decodes a frame. It leaves as
// bytes: AppendFrame packs a message behind its header. Field content inside
// a Message is canonical (ASCII text, raw bytes for binary fields) whatever
// the wire encoding, so that conversion between dialects is a copy.
//
// Errors never carry field content, only the field number and the reason,
// because content may be a PAN. Describe and MaskPAN are the only ways this
// package renders content, and they mask by the field's definition.
//
// Not here: routing, matching and any decision about what a message means
// (package switch), network I/O (package front).
package codec
