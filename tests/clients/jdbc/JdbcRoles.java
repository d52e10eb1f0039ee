// pgjdbc logging in as a role with its own password over SCRAM-SHA-256 (issue #32): run by
// tests/it/security.rs as `java JdbcRoles PORT ROLE PASSWORD`. Checks current_user, that a
// granted table reads and an ungranted one is refused with 42501, and that a wrong password is
// refused with 28P01. Prints "jdbc roles: ok".
import java.sql.*;

public class JdbcRoles {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/asofdb";
        try (Connection conn = DriverManager.getConnection(url, args[1], args[2]);
             Statement st = conn.createStatement()) {
            try (ResultSet rs = st.executeQuery("SELECT current_user")) {
                rs.next();
                check(rs.getString(1).equals(args[1]), "current_user " + rs.getString(1));
            }
            try (PreparedStatement ps = conn.prepareStatement("SELECT count(*) FROM granted_t WHERE id > ?")) {
                ps.setLong(1, 0);
                try (ResultSet rs = ps.executeQuery()) {
                    rs.next();
                    check(rs.getLong(1) == 2, "granted rows " + rs.getLong(1));
                }
            }
            try {
                st.executeQuery("SELECT * FROM secret_t");
                check(false, "secret_t was readable");
            } catch (SQLException e) {
                check("42501".equals(e.getSQLState()), "refusal " + e.getSQLState());
            }
        }
        try {
            DriverManager.getConnection(url, args[1], args[2] + "x").close();
            check(false, "a wrong password logged in");
        } catch (SQLException e) {
            check("28P01".equals(e.getSQLState()), "wrong password " + e.getSQLState());
        }
        System.out.println("jdbc roles: ok");
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }
}
