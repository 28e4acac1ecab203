// Validates JPKI certificates the way a Java relying party does: java.security.cert's PKIX
// CertPathValidator, revocation by OCSP only or by CRL only, fetched from the URLs in the
// certificate (AIA for OCSP, CRL distribution points for the CRL: RFC 5280 sections 4.2.2.1
// and 4.2.1.13).  tests/interop/test_java.py compiles it with javac and runs it on the scenario
// catalog; it prints one table row per case.
//
// Input, one case per line, tab-separated:
//   name  mode(ocsp|crl|defaults)  certificate.pem  anchor.pem[,anchor.pem...]  validation-date(ISO-8601|-)
// Output: name, mode, outcome (valid, revoked, expired, not_yet_valid, bad_signature,
// unknown_issuer, undetermined, error) and for "revoked" the java.security.cert.CRLReason Java
// reports.  Mode "defaults" is PKIXParameters as constructed, revocation off: it shows what a
// Java relying party that does not know about JPKI's policy qualifiers gets.

import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.cert.CertPathValidator;
import java.security.cert.CertPathValidatorException;
import java.security.cert.CertificateFactory;
import java.security.cert.CertificateRevokedException;
import java.security.cert.PKIXParameters;
import java.security.cert.PKIXReason;
import java.security.cert.PKIXRevocationChecker;
import java.security.cert.TrustAnchor;
import java.security.cert.X509Certificate;
import java.time.Instant;
import java.util.Date;
import java.util.EnumSet;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

public final class JpkiVerify {
    private static final String ROW = "%-36s %-8s %-14s %s%n";

    public static void main(String[] args) throws Exception {
        // The JDK fetches CRLs from a certificate's CRL distribution points only when asked to;
        // without it "CRL only" finds no CRL and ends "undetermined".
        System.setProperty("com.sun.security.enableCRLDP", "true");
        CertificateFactory cf = CertificateFactory.getInstance("X.509");
        System.out.printf(ROW, "case", "mode", "outcome", "reason");
        for (String line : Files.readAllLines(Path.of(args[0]))) {
            if (line.isBlank()) {
                continue;
            }
            String[] f = line.split("\t");
            X509Certificate cert = load(cf, f[2]);
            Set<TrustAnchor> anchors = new HashSet<>();
            for (String anchor : f[3].split(",")) {
                anchors.add(new TrustAnchor(load(cf, anchor), null));
            }
            Date at = f[4].equals("-") ? null : Date.from(Instant.parse(f[4]));
            String[] result = validate(cf, cert, anchors, f[1], at);
            System.out.printf(ROW, f[0], f[1], result[0], result[1]);
        }
    }

    static X509Certificate load(CertificateFactory cf, String file) throws Exception {
        try (InputStream in = Files.newInputStream(Path.of(file))) {
            return (X509Certificate) cf.generateCertificate(in);
        }
    }

    static String[] validate(CertificateFactory cf, X509Certificate cert, Set<TrustAnchor> anchors, String mode,
                             Date at) throws Exception {
        PKIXParameters params = new PKIXParameters(anchors);
        CertPathValidator validator = CertPathValidator.getInstance("PKIX");
        if (mode.equals("defaults")) {
            params.setRevocationEnabled(false);
            return run(validator, cf, cert, params);
        }
        // JPKI's certificatePolicies extension is critical and carries a CPS qualifier; the JDK
        // rejects such a certificate ("critical policy qualifiers present in certificate")
        // unless told that a relying party may ignore qualifiers (RFC 5280 section 4.2.1.4).
        params.setPolicyQualifiersRejected(false);
        if (at != null) {
            params.setDate(at);  // validate as of another time: expiry without waiting
        }
        PKIXRevocationChecker revocation = (PKIXRevocationChecker) validator.getRevocationChecker();
        // NO_FALLBACK: the one method chosen decides; OCSP is the JDK's default preference.
        revocation.setOptions(mode.equals("crl")
                ? EnumSet.of(PKIXRevocationChecker.Option.PREFER_CRLS, PKIXRevocationChecker.Option.NO_FALLBACK)
                : EnumSet.of(PKIXRevocationChecker.Option.NO_FALLBACK));
        params.addCertPathChecker(revocation);
        return run(validator, cf, cert, params);
    }

    static String[] run(CertPathValidator validator, CertificateFactory cf, X509Certificate cert,
                        PKIXParameters params) throws Exception {
        try {
            validator.validate(cf.generateCertPath(List.of(cert)), params);
            return new String[] {"valid", "-"};
        } catch (CertPathValidatorException e) {
            CertPathValidatorException.Reason reason = e.getReason();
            if (reason == CertPathValidatorException.BasicReason.REVOKED) {
                return new String[] {"revoked", revocationReason(e)};
            }
            if (reason == CertPathValidatorException.BasicReason.EXPIRED) {
                return new String[] {"expired", "-"};
            }
            if (reason == CertPathValidatorException.BasicReason.NOT_YET_VALID) {
                return new String[] {"not_yet_valid", "-"};
            }
            if (reason == CertPathValidatorException.BasicReason.INVALID_SIGNATURE) {
                return new String[] {"bad_signature", "-"};
            }
            if (reason == PKIXReason.NO_TRUST_ANCHOR) {
                return new String[] {"unknown_issuer", "-"};
            }
            if (reason == CertPathValidatorException.BasicReason.UNDETERMINED_REVOCATION_STATUS) {
                return new String[] {"undetermined", oneLine(e)};
            }
            return new String[] {"error", reason + ": " + oneLine(e)};
        }
    }

    /** The CRLReason the JDK read from the OCSP response or the CRL entry. */
    static String revocationReason(Throwable e) {
        for (Throwable t = e; t != null; t = t.getCause()) {
            if (t instanceof CertificateRevokedException) {
                return ((CertificateRevokedException) t).getRevocationReason().name();
            }
        }
        return "?";
    }

    static String oneLine(Throwable e) {
        return String.valueOf(e.getMessage()).replace('\n', ' ');
    }
}
