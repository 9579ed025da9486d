package codec

// Transaction type codes: the first two digits of the processing code
// (field 3). The next two are the "from" account type, the last two the
// "to" account type ("00" default, "10" savings, "20" checking, "30" credit).
const (
	TxPurchase = "00"
	TxCash     = "01"
	TxRefund   = "20"
	TxDeposit  = "21"
	TxBalance  = "31"
	TxTransfer = "40"
	TxPayment  = "50"
)

// Response codes (field 39) the switch and its ledger hosts answer with.
const (
	RCApproved           = "00"
	RCInvalidTransaction = "12"
	RCInvalidAmount      = "13"
	RCInvalidCard        = "14"
	RCNoSuchIssuer       = "15"
	RCNoOriginal         = "25" // unable to locate the original of a reversal
	RCFormatError        = "30"
	RCLostCard           = "41"
	RCStolenCard         = "43"
	RCInsufficientFunds  = "51"
	RCExpiredCard        = "54"
	RCNotPermitted       = "57" // transaction not permitted to cardholder
	RCNotPermittedTerm   = "58" // transaction not permitted to terminal
	RCExceedsAmount      = "61" // exceeds withdrawal amount limit
	RCExceedsCount       = "65" // exceeds withdrawal frequency limit
	RCRestrictedCard     = "62"
	RCTooLate            = "68" // response received too late: a timeout, or an original after its reversal
	RCIssuerUnavailable  = "91"
	RCNoRoute            = "92"
	RCDuplicate          = "94"
	RCSystemError        = "96"
)

// ResponseText is a short English meaning of a response code, for people.
func ResponseText(rc string) string {
	switch rc {
	case RCApproved:
		return "approved"
	case RCInvalidTransaction:
		return "invalid transaction"
	case RCInvalidAmount:
		return "invalid amount"
	case RCInvalidCard:
		return "invalid card number"
	case RCNoSuchIssuer:
		return "no such issuer"
	case RCNoOriginal:
		return "unable to locate original transaction"
	case RCFormatError:
		return "format error"
	case RCLostCard:
		return "lost card"
	case RCStolenCard:
		return "stolen card"
	case RCInsufficientFunds:
		return "insufficient funds"
	case RCExpiredCard:
		return "expired card"
	case RCNotPermitted:
		return "transaction not permitted to cardholder"
	case RCNotPermittedTerm:
		return "transaction not permitted to terminal"
	case RCExceedsAmount:
		return "exceeds withdrawal amount limit"
	case RCExceedsCount:
		return "exceeds withdrawal frequency limit"
	case RCRestrictedCard:
		return "restricted card"
	case RCTooLate:
		return "response received too late"
	case RCIssuerUnavailable:
		return "issuer or switch inoperative"
	case RCNoRoute:
		return "no route to destination"
	case RCDuplicate:
		return "duplicate transmission"
	case RCSystemError:
		return "system malfunction"
	}
	return "unknown response code"
}
