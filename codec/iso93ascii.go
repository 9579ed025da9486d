package codec

// ISO93ASCII returns the ISO 8583:1993 dialect with ASCII content: MTIs of
// version 1 (1200, 1210, 1420…) as four ASCII digits, the bitmap as 16 hex
// characters (plus 16 for the secondary bitmap when a field above 64 is
// present), numeric and text fields as ASCII and LL/LLL lengths as ASCII
// digits. The fixed 8-byte binary fields 52, 64 and 128 travel as 16 hex
// characters, as in ISO87ASCII; the variable binary fields 53, 55 and 96 as
// raw bytes behind their ASCII length, as field 55 does in ISO87ASCII.
//
// The field layout is the one jPOS's ISO93APackager gives to ISO 8583:1993.
// It differs from 1987 beyond the MTI: 12 is date and time (YYMMDDhhmmss),
// 22 the 12-character POS data code, 24 the function code, 25 the message
// reason code, 39 a three-digit action code ("000" approves), 56 the original
// data elements (90 in 1987), and several 1987 fixed fields became variable
// (31, 43, 53, 72, 95, 96).
//
// Each call builds a new Dialect; build it once and share it.
func ISO93ASCII() *Dialect {
	return mustDialect(Layout{Name: "iso93ascii", Version: '1', MTI: EncASCII, Bitmap: EncHex}, iso93Fields())
}

// iso93Fields is the 1993 table. Masks follow ISO87ASCII: card numbers show
// their first six and last four digits, and expiry, tracks, PIN and ICC data
// only their length. NoEcho falls into three groups a response must not
// repeat from its request:
//   - how the card was read: expiry (14), POS data code (22), tracks (35, 36,
//     45) and ICC data (55), which describe the request's card, not the answer;
//   - security data: PIN block (52), security control (53), key management
//     (96) and MACs (64, 128), which are computed per message;
//   - what only the responder sets: approval code (38), action code (39),
//     additional response data (44) and balances (54).
func iso93Fields() []FieldDef {
	// Short constructors keep the 127 rows readable as a table.
	n := func(id int, name string, length int) FieldDef {
		return FieldDef{ID: id, Name: name, Class: ClassN, Length: length, Enc: EncASCII}
	}
	text := func(id int, name string, class Class, length int) FieldDef {
		return FieldDef{ID: id, Name: name, Class: class, Length: length, Enc: EncASCII}
	}
	ll := func(id int, name string, class Class, max int) FieldDef {
		return FieldDef{ID: id, Name: name, Class: class, Length: max, Prefix: PrefixASCII, PrefixSize: 2, Enc: EncASCII}
	}
	lll := func(id int, name string, class Class, max int) FieldDef {
		return FieldDef{ID: id, Name: name, Class: class, Length: max, Prefix: PrefixASCII, PrefixSize: 3, Enc: EncASCII}
	}
	// b8 is a fixed 8-byte binary field sent as 16 hex characters.
	b8 := func(id int, name string) FieldDef {
		return FieldDef{ID: id, Name: name, Class: ClassB, Length: 8, Enc: EncHex, NoEcho: true}
	}
	// bin is a variable binary field: raw bytes behind an ASCII length.
	bin := func(id int, name string, max, prefix int) FieldDef {
		return FieldDef{ID: id, Name: name, Class: ClassB, Length: max, Prefix: PrefixASCII, PrefixSize: prefix, Enc: EncBinary, NoEcho: true}
	}
	masked := func(f FieldDef, m Mask) FieldDef { f.Mask = m; return f }
	noEcho := func(f FieldDef) FieldDef { f.NoEcho = true; return f }

	defs := []FieldDef{
		masked(ll(2, "Primary account number", ClassN, 19), MaskCard),
		n(3, "Processing code", 6),
		n(4, "Amount, transaction", 12),
		n(5, "Amount, reconciliation", 12),
		n(6, "Amount, cardholder billing", 12),
		n(7, "Date and time, transmission", 10),
		n(8, "Amount, cardholder billing fee", 8),
		n(9, "Conversion rate, reconciliation", 8),
		n(10, "Conversion rate, cardholder billing", 8),
		n(11, "Systems trace audit number", 6),
		n(12, "Date and time, local transaction", 12),
		n(13, "Date, effective", 4),
		noEcho(masked(n(14, "Date, expiration", 4), MaskAll)),
		n(15, "Date, settlement", 6),
		n(16, "Date, conversion", 4),
		n(17, "Date, capture", 4),
		n(18, "Merchant type", 4),
		n(19, "Country code, acquiring institution", 3),
		n(20, "Country code, primary account number", 3),
		n(21, "Country code, forwarding institution", 3),
		noEcho(text(22, "Point of service data code", ClassAN, 12)),
		n(23, "Card sequence number", 3),
		n(24, "Function code", 3),
		n(25, "Message reason code", 4),
		n(26, "Card acceptor business code", 4),
		n(27, "Approval code length", 1),
		n(28, "Date, reconciliation", 6),
		n(29, "Reconciliation indicator", 3),
		n(30, "Amounts, original", 24),
		ll(31, "Acquirer reference data", ClassANS, 99),
		ll(32, "Acquiring institution identification code", ClassN, 11),
		ll(33, "Forwarding institution identification code", ClassN, 11),
		masked(ll(34, "Primary account number, extended", ClassANS, 28), MaskCard),
		noEcho(masked(ll(35, "Track 2 data", ClassZ, 37), MaskAll)),
		noEcho(masked(lll(36, "Track 3 data", ClassZ, 104), MaskAll)),
		text(37, "Retrieval reference number", ClassAN, 12),
		noEcho(text(38, "Approval code", ClassAN, 6)),
		noEcho(n(39, "Action code", 3)),
		n(40, "Service code", 3),
		text(41, "Card acceptor terminal identification", ClassANS, 8),
		text(42, "Card acceptor identification code", ClassANS, 15),
		ll(43, "Card acceptor name/location", ClassANS, 99),
		noEcho(ll(44, "Additional response data", ClassANS, 99)),
		noEcho(masked(ll(45, "Track 1 data", ClassANS, 76), MaskAll)),
		lll(46, "Amounts, fees", ClassANS, 204),
		lll(47, "Additional data, national", ClassANS, 999),
		lll(48, "Additional data, private", ClassANS, 999),
		// 1993 allows the alphabetic ISO 4217 code ("EUR") as well as the
		// numeric one ("978") in 49–51.
		text(49, "Currency code, transaction", ClassAN, 3),
		text(50, "Currency code, reconciliation", ClassAN, 3),
		text(51, "Currency code, cardholder billing", ClassAN, 3),
		masked(b8(52, "Personal identification number data"), MaskAll),
		bin(53, "Security related control information", 48, 2),
		noEcho(lll(54, "Amounts, additional", ClassANS, 120)),
		masked(bin(55, "Integrated circuit card system related data", 255, 3), MaskAll),
		ll(56, "Original data elements", ClassN, 35),
		n(57, "Authorization life cycle code", 3),
		ll(58, "Authorizing agent institution identification code", ClassN, 11),
		lll(59, "Transport data", ClassANS, 999),
		lll(60, "Reserved, national", ClassANS, 999),
		lll(61, "Reserved, national", ClassANS, 999),
		lll(62, "Reserved, private", ClassANS, 999),
		lll(63, "Reserved, private", ClassANS, 999),
		b8(64, "Message authentication code"),
		lll(66, "Amounts, original fees", ClassANS, 204),
		n(67, "Extended payment data", 2),
		n(68, "Country code, receiving institution", 3),
		n(69, "Country code, settlement institution", 3),
		n(70, "Country code, authorizing agent institution", 3),
		n(71, "Message number", 8),
		lll(72, "Data record", ClassANS, 999),
		n(73, "Date, action", 6),
		n(74, "Credits, number", 10),
		n(75, "Credits, reversal number", 10),
		n(76, "Debits, number", 10),
		n(77, "Debits, reversal number", 10),
		n(78, "Transfer, number", 10),
		n(79, "Transfer, reversal number", 10),
		n(80, "Inquiries, number", 10),
		n(81, "Authorizations, number", 10),
		n(82, "Inquiries, reversal number", 10),
		n(83, "Payments, number", 10),
		n(84, "Payments, reversal number", 10),
		n(85, "Fee collections, number", 10),
		n(86, "Credits, amount", 16),
		n(87, "Credits, reversal amount", 16),
		n(88, "Debits, amount", 16),
		n(89, "Debits, reversal amount", 16),
		n(90, "Authorizations, reversal number", 10),
		n(91, "Country code, transaction destination institution", 3),
		n(92, "Country code, transaction originator institution", 3),
		ll(93, "Transaction destination institution identification code", ClassN, 11),
		ll(94, "Transaction originator institution identification code", ClassN, 11),
		ll(95, "Card issuer reference data", ClassANS, 99),
		bin(96, "Key management data", 999, 3),
		text(97, "Amount, net reconciliation", ClassXN, 17),
		text(98, "Payee", ClassANS, 25),
		ll(99, "Settlement institution identification code", ClassANS, 11),
		ll(100, "Receiving institution identification code", ClassN, 11),
		ll(101, "File name", ClassANS, 17),
		masked(ll(102, "Account identification 1", ClassANS, 28), MaskCard),
		masked(ll(103, "Account identification 2", ClassANS, 28), MaskCard),
		lll(104, "Transaction description", ClassANS, 100),
		n(105, "Credits, chargeback amount", 16),
		n(106, "Debits, chargeback amount", 16),
		n(107, "Credits, chargeback number", 10),
		n(108, "Debits, chargeback number", 10),
		ll(109, "Credits, fee amounts", ClassANS, 84),
		ll(110, "Debits, fee amounts", ClassANS, 84),
	}
	for id := 111; id <= 127; id++ {
		name := "Reserved, ISO"
		switch {
		case id >= 123:
			name = "Reserved, private"
		case id >= 116:
			name = "Reserved, national"
		}
		defs = append(defs, lll(id, name, ClassANS, 999))
	}
	return append(defs, b8(128, "Message authentication code"))
}
