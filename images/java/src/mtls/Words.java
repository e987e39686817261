package mtls;

import java.security.cert.CertPathValidatorException;
import java.util.IdentityHashMap;
import java.util.Map;

/** The stack's own words for an exception: Java class names, CertPathValidatorException reasons, messages. */
final class Words {
    private Words() {}

    /** One class name: with the Reason of a CertPathValidatorException, e.g. ...CertPathValidatorException(EXPIRED). */
    static String name(Throwable t) {
        String name = t.getClass().getName();
        if (t instanceof CertPathValidatorException) {
            name += "(" + ((CertPathValidatorException) t).getReason() + ")";
        }
        return name;
    }

    /** The exception and its causes, outermost first, separated by "/" (no spaces: one token). */
    static String code(Throwable t) {
        StringBuilder out = new StringBuilder();
        Map<Throwable, Boolean> seen = new IdentityHashMap<>();
        for (Throwable e = t; e != null && seen.put(e, true) == null; e = e.getCause()) {
            if (out.length() > 0) {
                out.append('/');
            }
            out.append(name(e));
        }
        return out.toString();
    }

    /** "class: message; caused by class(REASON): message; ..." */
    static String describe(Throwable t) {
        StringBuilder out = new StringBuilder();
        Map<Throwable, Boolean> seen = new IdentityHashMap<>();
        for (Throwable e = t; e != null && seen.put(e, true) == null; e = e.getCause()) {
            if (out.length() > 0) {
                out.append("; caused by ");
            }
            out.append(name(e));
            if (e.getMessage() != null) {
                out.append(": ").append(e.getMessage());
            }
        }
        return out.toString().replace('\n', ' ').replace('\r', ' ');
    }

    /** A JSON string literal. */
    static String json(String s) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': out.append("\\\""); break;
                case '\\': out.append("\\\\"); break;
                case '\n': out.append("\\n"); break;
                case '\r': out.append("\\r"); break;
                case '\t': out.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
            }
        }
        return out.append('"').toString();
    }
}
