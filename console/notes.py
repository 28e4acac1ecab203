"""What each field of a JPKI artefact is, why JPKI sets it so, and where that is written.

Keys are the field names the explainer's tree uses (asn1crypto's) or OID names; each note is
(English, Japanese, source).  Sources are RFC sections or the numbered sections of
docs/sources.md, where every JPKI fact is tied to a public document.
"""

from __future__ import annotations

Note = tuple[str, str, str]

NOTES: dict[str, Note] = {
    # ---- certificates (RFC 5280 section 4.1)
    "tbs_certificate": ("The signed part of the certificate: everything the CA vouches for.",
                        "証明書のうち認証局が署名する部分。", "RFC 5280 §4.1.1.1"),
    "version": ("v3 (encoded as 2): extensions are present.", "v3 (値は 2)。拡張を含むため。", "RFC 5280 §4.1.2.1"),
    "serial_number": ("Unique per CA generation; OCSP and CRLs name the certificate by it.",
                      "認証局の鍵世代ごとに一意。OCSP と CRL はこの番号で証明書を指します。", "RFC 5280 §4.1.2.2"),
    "signature": ("The algorithm the CA signed with: sha256WithRSAEncryption, as JPKI's current CAs.",
                  "認証局の署名アルゴリズム。現行の JPKI と同じ sha256WithRSAEncryption。",
                  "RFC 5280 §4.1.2.3; docs/sources.md §2"),
    "issuer": (("The CA's name. Every key generation of a JPKI CA keeps the same name, so a verifier picks "
               "the issuer by key (authorityKeyIdentifier), not by name."),
               ("認証局の名前。JPKI では鍵世代が変わっても同じ名前のため、検証者は名前ではなく鍵 "
               "(authorityKeyIdentifier) で発行者を選びます。"), "RFC 5280 §4.1.2.4; docs/sources.md §2"),
    "validity": (("notBefore and notAfter. A signature certificate lives about 5 years; a user-authentication "
                 "certificate follows the card (about 10 years, 5 for minors)."),
                 "有効期間。署名用は約 5 年、利用者証明用はカードに合わせます (約 10 年、未成年は 5 年)。",
                 "RFC 5280 §4.1.2.5; docs/sources.md §3"),
    "subject": (("Whom the certificate is about. JPKI puts no personal name here: C, the prefecture and "
                "municipality as L, and a CN that is an opaque issuance number."),
                "証明書の主体。JPKI は氏名をここに入れず、C、都道府県と市区町村 (L)、発行番号の CN のみ。",
                "RFC 5280 §4.1.2.6; docs/sources.md §3"),
    "subject_public_key_info": ("The holder's RSA 2048-bit public key; the private key never leaves the card.",
                                "利用者の RSA 2048 ビット公開鍵。秘密鍵はカードの外に出ません。",
                                "RFC 5280 §4.1.2.7; docs/sources.md §5"),
    "extensions": ("Extensions: what the key may do, under which policy, where status is published.",
                   "拡張領域: 鍵の用途、ポリシー、失効情報の公開場所など。", "RFC 5280 §4.2"),
    "signature_algorithm": ("The algorithm of the signature below (repeats the one inside the signed part).",
                            "下の署名値のアルゴリズム (署名対象部分の中の値と同じ)。", "RFC 5280 §4.1.1.2"),
    "signature_value": ("The CA's signature over the signed part.", "署名対象部分に対する認証局の署名値。",
                        "RFC 5280 §4.1.1.3"),
    "critical": ("A verifier that does not understand a critical extension must reject the certificate.",
                 "critical な拡張を理解できない検証者は証明書を拒否しなければなりません。", "RFC 5280 §4.2"),
    "key_usage": (("Signature certificate: digitalSignature + nonRepudiation; user-authentication: "
                  "digitalSignature only. Critical."),
                  "署名用は digitalSignature と nonRepudiation、利用者証明用は digitalSignature のみ。critical。",
                  "RFC 5280 §4.2.1.3; docs/sources.md §3"),
    "certificate_policies": (("The JPKI policy OID, critical, with a CPS pointer. Java's PKIX validator rejects "
                             "critical policy qualifiers unless told not to."),
                             ("JPKI のポリシー OID。critical で CPS の URI を持ちます。Java の PKIX 検証は設定しないと"
                             "これを拒否します。"), "RFC 5280 §4.2.1.4; docs/sources.md §3"),
    "subject_alt_name": (("Signature certificates only: the basic four (name, date of birth, gender, address) "
                         "as otherNames under J-LIS's OID arc, plus flags for substituted characters."),
                         ("署名用のみ: 基本 4 情報 (氏名・生年月日・性別・住所) を J-LIS の OID の otherName として"
                         "格納し、代替文字の位置を示すフラグも持ちます。"), "RFC 5280 §4.2.1.6; docs/sources.md §3"),
    "issuer_alt_name": ("The CA's name again, as a directory name.", "認証局の名前 (ディレクトリ名)。",
                        "RFC 5280 §4.2.1.7"),
    "crl_distribution_points": (("Where the CRL that would list this certificate is published: JPKI partitions "
                                "CRLs by municipality, so this names the holder's municipality's partition."),
                                ("この証明書が掲載される CRL の場所。JPKI は市区町村ごとに CRL を分割するため、"
                                "利用者の市区町村の分割 CRL を指します。"), "RFC 5280 §4.2.1.13; docs/sources.md §4"),
    "authority_information_access": ("Where to ask OCSP about this certificate (id-ad-ocsp).",
                                     "この証明書を OCSP で問い合わせる先 (id-ad-ocsp)。", "RFC 5280 §4.2.2.1"),
    "authority_key_identifier": ("Which CA key signed this: how a verifier picks the right generation.",
                                 "どの認証局鍵で署名したか。検証者はこれで世代を選びます。", "RFC 5280 §4.2.1.1"),
    "key_identifier": ("The subject key identifier: a hash of the public key.",
                       "サブジェクト鍵識別子: 公開鍵のハッシュ。", "RFC 5280 §4.2.1.2"),
    "jpki-name (氏名)": ("The holder's name as the resident registry writes it.", "住民票に記載の氏名。",
                        "docs/sources.md §3"),
    "jpki-date-of-birth (生年月日)": ("Date of birth, YYYYMMDD.", "生年月日 (YYYYMMDD)。", "docs/sources.md §3"),
    "jpki-gender (性別)": ("Gender as a digit: 1 male, 2 female, 3 unspecified.", "性別 (1 男、2 女、3 不明)。",
                          "docs/sources.md §3"),
    "jpki-address (住所)": ("The registered address; moving house revokes the certificate (affiliationChanged).",
                           "住民票の住所。転居すると証明書は失効します (affiliationChanged)。", "docs/sources.md §3"),
    # ---- CRLs (RFC 5280 section 5)
    "tbs_cert_list": ("The signed part of the CRL.", "CRL のうち署名される部分。", "RFC 5280 §5.1.1.1"),
    "this_update": ("When this CRL (or OCSP answer) was made. JPKI publishes CRLs daily.",
                    "この CRL (または OCSP 応答) の作成日時。JPKI の CRL は毎日発行されます。",
                    "RFC 5280 §5.1.2.4; docs/sources.md §4"),
    "next_update": ("The latest time the next one will be out; after it a verifier treats this one as stale.",
                    "次の発行予定の最遅時刻。これを過ぎると古い情報として扱われます。", "RFC 5280 §5.1.2.5"),
    "revoked_certificates": ("Each revoked serial with its revocation date and reason.",
                             "失効したシリアル番号と失効日時・理由。", "RFC 5280 §5.1.2.6"),
    "crl_number": ("Increases with every CRL of the stream: a verifier keeps the newest.",
                   "CRL ごとに増える番号。検証者は最新のものを使います。", "RFC 5280 §5.2.3"),
    "issuing_distribution_point": (("Critical: which partition this CRL is (the municipality's), so it cannot be "
                                   "mistaken for a full CRL."),
                                   ("critical: この CRL がどの分割 (市区町村) かを示し、全体 CRL と取り違えないように"
                                   "します。"), "RFC 5280 §5.2.5; docs/sources.md §4"),
    "delta_crl_indicator": ("A delta CRL: only the changes since the base CRL of that number.",
                            "差分 CRL: 指定番号のベース CRL からの変更のみ。", "RFC 5280 §5.2.4"),
    "crl_reason": ("Why it was revoked: moving house is affiliationChanged, a lost card certificateHold.",
                   "失効理由。転居は affiliationChanged、紛失は certificateHold。",
                   "RFC 5280 §5.3.1; docs/lifecycle.md"),
    "revocation_date": ("When it was revoked.", "失効日時。", "RFC 5280 §5.1.2.6"),
    # ---- OCSP (RFC 6960)
    "tbs_request": ("The request: which certificates, and optional extensions such as a nonce.",
                    "リクエスト本体: どの証明書か、nonce などの拡張。", "RFC 6960 §4.1.1"),
    "req_cert": ("The CertID: hashes of the issuer's name and key, and the serial.",
                 "CertID: 発行者の名前と鍵のハッシュ、シリアル番号。", "RFC 6960 §4.1.1"),
    "hash_algorithm": ("SHA-1 (the classic default) or SHA-256; the mock answers both.",
                       "SHA-1 (従来の既定) または SHA-256。モックはどちらにも応答します。",
                       "RFC 6960 §4.1.1; RFC 5019"),
    "issuer_name_hash": (("Hash of the issuer's DER name. Every JPKI CA generation has the same name, so this "
                         "alone cannot pick the generation."), ("発行者名 (DER) のハッシュ。JPKI では世代間で名前が"
                         "同じため、これだけでは世代を特定できません。"), "RFC 6960 §4.1.1"),
    "issuer_key_hash": ("Hash of the issuer's public key: this picks the CA generation.",
                        "発行者の公開鍵のハッシュ。これで認証局の世代が決まります。", "RFC 6960 §4.1.1"),
    "response_status": ("successful, or why not (malformedRequest, unauthorized, tryLater...).",
                        "successful、またはその理由 (malformedRequest, unauthorized, tryLater など)。",
                        "RFC 6960 §4.2.1"),
    "cert_status": ("good, revoked (with time and reason) or unknown.", "good、revoked (日時と理由付き)、unknown。",
                    "RFC 6960 §4.2.1"),
    "responder_id": ("Who signed the answer: the mock's delegated responder for that CA generation.",
                     "応答の署名者: その世代の認証局から委任された OCSP レスポンダ。", "RFC 6960 §4.2.2.2"),
    "produced_at": ("When the responder signed this answer.", "レスポンダが応答に署名した日時。", "RFC 6960 §4.2.1"),
    "nonce": (("A random value the client sent; echoed so the answer cannot be replayed. Without it, a "
              "pre-signed cached answer may be used."), ("クライアントが送った乱数。応答に同じ値を返すことで再送攻撃を"
              "防ぎます。nonce がなければ事前署名の応答が使われることがあります。"), "RFC 8954; RFC 6960 §4.4.1"),
    "certs": ("The responder's certificate, issued by the CA with id-kp-OCSPSigning.",
              "レスポンダの証明書 (認証局が id-kp-OCSPSigning 付きで発行)。", "RFC 6960 §4.2.2.2"),
}


def note_for(name: str) -> Note | None:
    """The note of a tree node's field name ("extn_id" notes are looked up by the extension's name)."""
    key = name.split(" — ")[-1] if " — " in name else name.split(" (")[0].split(":")[0]
    return NOTES.get(key)
