package codec

// ISO87ASCII returns the ISO 8583:1987 dialect with ASCII content: the MTI and
// numeric fields as ASCII digits, the bitmap as 16 hex characters (plus 16 more
// for the secondary bitmap, sent only when a field above 64 is present), LL and
// LLL lengths as ASCII digits, binary fields 52, 64, 96 and 128 as hex text and
// field 55 (ICC data) as raw bytes behind an LLL length. POS, kiosk, web and
// hotline channels speak it.
//
// Field definitions follow ISO 8583:1987. Each call builds a new Dialect; build
// it once and share it (Dialects, below, holds the built-in ones by name).
func ISO87ASCII() *Dialect {
	return mustDialect(Layout{Name: "iso87ascii", Version: '0', MTI: EncASCII, Bitmap: EncHex}, iso87Fields())
}

// ISO87Binary returns the ISO 8583:1987 binary dialect banks and internal
// ledger links speak: the same fields as ISO87ASCII, with the MTI and numeric
// fields in BCD, an 8-byte binary bitmap, binary fields as raw bytes and
// lengths as binary integers (one byte for LL fields, two for LLL). Text
// fields (an, ans, track data) stay ASCII.
func ISO87Binary() *Dialect {
	defs := iso87Fields()
	for i := range defs {
		f := &defs[i]
		switch {
		case f.Enc == EncASCII && f.Class == ClassN:
			f.Enc = EncBCD
		case f.Enc == EncHex:
			f.Enc = EncBinary
		}
		if f.Prefix == PrefixASCII {
			f.Prefix = PrefixBinary
			f.PrefixSize-- // LL: 1 byte, LLL: 2 bytes
		}
	}
	return mustDialect(Layout{Name: "iso87binary", Version: '0', MTI: EncBCD, Bitmap: EncBinary}, defs)
}

// mustDialect builds a dialect from a table of this package: a failure is a
// bug, not input.
func mustDialect(l Layout, defs []FieldDef) *Dialect {
	d, err := NewDialect(l, defs)
	if err != nil {
		panic(err)
	}
	return d
}

func iso87Fields() []FieldDef {
	return []FieldDef{
		{ID: 2, Name: "Primary account number", Class: ClassN, Length: 19, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII, Mask: MaskCard},
		{ID: 3, Name: "Processing code", Class: ClassN, Length: 6, Enc: EncASCII},
		{ID: 4, Name: "Amount, transaction", Class: ClassN, Length: 12, Enc: EncASCII},
		{ID: 5, Name: "Amount, settlement", Class: ClassN, Length: 12, Enc: EncASCII},
		{ID: 6, Name: "Amount, cardholder billing", Class: ClassN, Length: 12, Enc: EncASCII},
		{ID: 7, Name: "Transmission date and time", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 8, Name: "Amount, cardholder billing fee", Class: ClassN, Length: 8, Enc: EncASCII},
		{ID: 9, Name: "Conversion rate, settlement", Class: ClassN, Length: 8, Enc: EncASCII},
		{ID: 10, Name: "Conversion rate, cardholder billing", Class: ClassN, Length: 8, Enc: EncASCII},
		{ID: 11, Name: "Systems trace audit number", Class: ClassN, Length: 6, Enc: EncASCII},
		{ID: 12, Name: "Time, local transaction", Class: ClassN, Length: 6, Enc: EncASCII},
		{ID: 13, Name: "Date, local transaction", Class: ClassN, Length: 4, Enc: EncASCII},
		{ID: 14, Name: "Date, expiration", Class: ClassN, Length: 4, Enc: EncASCII, Mask: MaskAll, NoEcho: true},
		{ID: 15, Name: "Date, settlement", Class: ClassN, Length: 4, Enc: EncASCII},
		{ID: 16, Name: "Date, conversion", Class: ClassN, Length: 4, Enc: EncASCII},
		{ID: 17, Name: "Date, capture", Class: ClassN, Length: 4, Enc: EncASCII},
		{ID: 18, Name: "Merchant type", Class: ClassN, Length: 4, Enc: EncASCII},
		{ID: 19, Name: "Acquiring institution country code", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 20, Name: "PAN extended, country code", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 21, Name: "Forwarding institution country code", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 22, Name: "Point of service entry mode", Class: ClassN, Length: 3, Enc: EncASCII, NoEcho: true},
		{ID: 23, Name: "Card sequence number", Class: ClassN, Length: 3, Enc: EncASCII, NoEcho: true},
		{ID: 24, Name: "Network international identifier", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 25, Name: "Point of service condition code", Class: ClassN, Length: 2, Enc: EncASCII},
		{ID: 26, Name: "Point of service PIN capture code", Class: ClassN, Length: 2, Enc: EncASCII, NoEcho: true},
		{ID: 27, Name: "Authorization identification response length", Class: ClassN, Length: 1, Enc: EncASCII},
		{ID: 28, Name: "Amount, transaction fee", Class: ClassXN, Length: 9, Enc: EncASCII},
		{ID: 29, Name: "Amount, settlement fee", Class: ClassXN, Length: 9, Enc: EncASCII},
		{ID: 30, Name: "Amount, transaction processing fee", Class: ClassXN, Length: 9, Enc: EncASCII},
		{ID: 31, Name: "Amount, settlement processing fee", Class: ClassXN, Length: 9, Enc: EncASCII},
		{ID: 32, Name: "Acquiring institution identification code", Class: ClassN, Length: 11, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII},
		{ID: 33, Name: "Forwarding institution identification code", Class: ClassN, Length: 11, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII},
		{ID: 34, Name: "Primary account number, extended", Class: ClassANS, Length: 28, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII, Mask: MaskCard},
		{ID: 35, Name: "Track 2 data", Class: ClassZ, Length: 37, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII, Mask: MaskAll, NoEcho: true},
		{ID: 36, Name: "Track 3 data", Class: ClassZ, Length: 104, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII, Mask: MaskAll, NoEcho: true},
		{ID: 37, Name: "Retrieval reference number", Class: ClassAN, Length: 12, Enc: EncASCII},
		{ID: 38, Name: "Authorization identification response", Class: ClassAN, Length: 6, Enc: EncASCII, NoEcho: true},
		{ID: 39, Name: "Response code", Class: ClassAN, Length: 2, Enc: EncASCII, NoEcho: true},
		{ID: 40, Name: "Service restriction code", Class: ClassAN, Length: 3, Enc: EncASCII},
		{ID: 41, Name: "Card acceptor terminal identification", Class: ClassANS, Length: 8, Enc: EncASCII},
		{ID: 42, Name: "Card acceptor identification code", Class: ClassANS, Length: 15, Enc: EncASCII},
		{ID: 43, Name: "Card acceptor name/location", Class: ClassANS, Length: 40, Enc: EncASCII},
		{ID: 44, Name: "Additional response data", Class: ClassAN, Length: 25, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII, NoEcho: true},
		{ID: 45, Name: "Track 1 data", Class: ClassAN, Length: 76, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII, Mask: MaskAll, NoEcho: true},
		{ID: 46, Name: "Additional data, ISO", Class: ClassAN, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 47, Name: "Additional data, national", Class: ClassAN, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 48, Name: "Additional data, private", Class: ClassAN, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 49, Name: "Currency code, transaction", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 50, Name: "Currency code, settlement", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 51, Name: "Currency code, cardholder billing", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 52, Name: "Personal identification number data", Class: ClassB, Length: 8, Enc: EncHex, Mask: MaskAll, NoEcho: true},
		{ID: 53, Name: "Security related control information", Class: ClassN, Length: 16, Enc: EncASCII, NoEcho: true},
		{ID: 54, Name: "Additional amounts", Class: ClassAN, Length: 120, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII, NoEcho: true},
		{ID: 55, Name: "Integrated circuit card system related data", Class: ClassB, Length: 255, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncBinary, Mask: MaskAll, NoEcho: true},
		{ID: 56, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 57, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 58, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 59, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 60, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 61, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 62, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 63, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 64, Name: "Message authentication code", Class: ClassB, Length: 8, Enc: EncHex, NoEcho: true},
		{ID: 66, Name: "Settlement code", Class: ClassN, Length: 1, Enc: EncASCII},
		{ID: 67, Name: "Extended payment code", Class: ClassN, Length: 2, Enc: EncASCII},
		{ID: 68, Name: "Receiving institution country code", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 69, Name: "Settlement institution country code", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 70, Name: "Network management information code", Class: ClassN, Length: 3, Enc: EncASCII},
		{ID: 71, Name: "Message number", Class: ClassN, Length: 4, Enc: EncASCII},
		{ID: 72, Name: "Message number, last", Class: ClassN, Length: 4, Enc: EncASCII},
		{ID: 73, Name: "Date, action", Class: ClassN, Length: 6, Enc: EncASCII},
		{ID: 74, Name: "Credits, number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 75, Name: "Credits, reversal number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 76, Name: "Debits, number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 77, Name: "Debits, reversal number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 78, Name: "Transfer, number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 79, Name: "Transfer, reversal number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 80, Name: "Inquiries, number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 81, Name: "Authorizations, number", Class: ClassN, Length: 10, Enc: EncASCII},
		{ID: 82, Name: "Credits, processing fee amount", Class: ClassN, Length: 12, Enc: EncASCII},
		{ID: 83, Name: "Credits, transaction fee amount", Class: ClassN, Length: 12, Enc: EncASCII},
		{ID: 84, Name: "Debits, processing fee amount", Class: ClassN, Length: 12, Enc: EncASCII},
		{ID: 85, Name: "Debits, transaction fee amount", Class: ClassN, Length: 12, Enc: EncASCII},
		{ID: 86, Name: "Credits, amount", Class: ClassN, Length: 16, Enc: EncASCII},
		{ID: 87, Name: "Credits, reversal amount", Class: ClassN, Length: 16, Enc: EncASCII},
		{ID: 88, Name: "Debits, amount", Class: ClassN, Length: 16, Enc: EncASCII},
		{ID: 89, Name: "Debits, reversal amount", Class: ClassN, Length: 16, Enc: EncASCII},
		{ID: 90, Name: "Original data elements", Class: ClassN, Length: 42, Enc: EncASCII},
		{ID: 91, Name: "File update code", Class: ClassAN, Length: 1, Enc: EncASCII},
		{ID: 92, Name: "File security code", Class: ClassAN, Length: 2, Enc: EncASCII},
		{ID: 93, Name: "Response indicator", Class: ClassAN, Length: 5, Enc: EncASCII},
		{ID: 94, Name: "Service indicator", Class: ClassAN, Length: 7, Enc: EncASCII},
		{ID: 95, Name: "Replacement amounts", Class: ClassAN, Length: 42, Enc: EncASCII},
		{ID: 96, Name: "Message security code", Class: ClassB, Length: 8, Enc: EncHex, NoEcho: true},
		{ID: 97, Name: "Amount, net settlement", Class: ClassXN, Length: 17, Enc: EncASCII},
		{ID: 98, Name: "Payee", Class: ClassANS, Length: 25, Enc: EncASCII},
		{ID: 99, Name: "Settlement institution identification code", Class: ClassN, Length: 11, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII},
		{ID: 100, Name: "Receiving institution identification code", Class: ClassN, Length: 11, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII},
		{ID: 101, Name: "File name", Class: ClassANS, Length: 17, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII},
		{ID: 102, Name: "Account identification 1", Class: ClassANS, Length: 28, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII, Mask: MaskCard},
		{ID: 103, Name: "Account identification 2", Class: ClassANS, Length: 28, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII, Mask: MaskCard},
		{ID: 104, Name: "Transaction description", Class: ClassANS, Length: 100, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 105, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 106, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 107, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 108, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 109, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 110, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 111, Name: "Reserved, ISO", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 112, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 113, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 114, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 115, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 116, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 117, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 118, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 119, Name: "Reserved, national", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 120, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 121, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 122, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 123, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 124, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 125, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 126, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 127, Name: "Reserved, private", Class: ClassANS, Length: 999, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII},
		{ID: 128, Name: "Message authentication code", Class: ClassB, Length: 8, Enc: EncHex, NoEcho: true},
	}
}
