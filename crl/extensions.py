"""CRL and CRL-entry extensions (RFC 5280 sections 5.2 and 5.3), encoded once per CRL with asn1crypto.

Per-entry extensions depend only on the reason code, so they are encoded once per reason
(:data:`ENTRY_EXTENSIONS`) and copied into every entry by the writer.
"""

from __future__ import annotations

from asn1crypto import core
from asn1crypto import crl as acrl
from asn1crypto import x509 as ax509

from jpki_mock.vocab import Reason

#: id-holdinstruction-reject (RFC 3280 section 5.3.2, X.509): "reject the certificate".  JPKI never
#: releases a hold (a found card is revoked and reissued), so "reject" is the instruction that matches;
#: callissuer would suggest the hold might be lifted by asking J-LIS.
HOLD_INSTRUCTION_REJECT = "1.2.840.10040.2.3"


def _entry_extensions(reason: Reason) -> bytes:
    """``crlEntryExtensions`` for one reason code.

    RFC 5280 section 5.3.1: the reasonCode extension SHOULD be absent instead of carrying
    unspecified (0), so those entries have no extensions at all.  certificateHold entries also
    carry holdInstructionCode (X.509 / RFC 3280 section 5.3.2)."""
    if reason is Reason.UNSPECIFIED:
        return b""
    exts: list[dict[str, object]] = [{"extn_id": "crl_reason", "critical": False, "extn_value": int(reason)}]
    if reason is Reason.CERTIFICATE_HOLD:
        exts.append({"extn_id": "hold_instruction_code", "critical": False,
                     "extn_value": core.ObjectIdentifier(HOLD_INSTRUCTION_REJECT)})
    encoded: bytes = acrl.CRLEntryExtensions(exts).dump()  # asn1crypto is unannotated: dump() is bytes
    return encoded


#: reason code -> encoded crlEntryExtensions (b"" for unspecified), for every reason JPKI uses
#: (:class:`jpki_mock.vocab.Reason`, docs/sources.md section 4); the store holds no other code.
ENTRY_EXTENSIONS: dict[int, bytes] = {int(reason): _entry_extensions(reason) for reason in Reason}


def directory_name(name_der: bytes) -> ax509.GeneralName:
    return ax509.GeneralName(name="directory_name", value=ax509.Name.load(name_der))


def uri(url: str) -> ax509.GeneralName:
    return ax509.GeneralName(name="uniform_resource_identifier", value=url)


def crl_extensions(
    *, ski: bytes, number: int, idp_names: list[ax509.GeneralName] | None = None, only_user: bool = False,
    only_ca: bool = False, delta_base: int | None = None, freshest: list[ax509.GeneralName] | None = None,
) -> bytes:
    """The ``crlExtensions`` SEQUENCE, in the order AKI, cRLNumber, IDP, deltaCRLIndicator, freshestCRL."""
    exts: list[dict[str, object]] = [
        # RFC 5280 section 5.2.1: AKI MUST be present; keyIdentifier = the issuing generation's SKI,
        # which tells the generations apart since they all share one DN.
        {"extn_id": "authority_key_identifier", "critical": False, "extn_value": {"key_identifier": ski}},
        # Section 5.2.3: monotonically increasing per scope, shared by complete and delta CRLs.
        {"extn_id": "crl_number", "critical": False, "extn_value": number},
    ]
    if idp_names is not None or only_user or only_ca:
        # Section 5.2.5: critical; names the partition exactly as the certificates' CRLDP does.
        idp: dict[str, object] = {}
        if idp_names:
            idp["distribution_point"] = {"full_name": idp_names}
        if only_user:
            idp["only_contains_user_certs"] = True
        if only_ca:
            idp["only_contains_ca_certs"] = True
        exts.append({"extn_id": "issuing_distribution_point", "critical": True, "extn_value": idp})
    if delta_base is not None:
        # Section 5.2.4: critical; the cRLNumber of the complete CRL this delta updates.
        exts.append({"extn_id": "delta_crl_indicator", "critical": True, "extn_value": delta_base})
    if freshest:
        # Section 5.2.6: where the delta CRLs for this complete CRL are.
        exts.append({"extn_id": "freshest_crl", "critical": False,
                     "extn_value": [{"distribution_point": {"full_name": freshest}}]})
    encoded: bytes = acrl.TBSCertListExtensions(exts).dump()
    return encoded
