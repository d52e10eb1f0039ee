// pgjdbc (Debian's libpostgresql-jdbc-java) against asofdb (issue #6): compiled and run by
// tests/it/clients.rs as `java -cp postgresql.jar:. JdbcClient PORT`. The scenario every client
// test follows (see psycopg_client.py), plus a batch with an error in the middle and
// DatabaseMetaData. Any failed check throws, so the JVM exits non-zero.
import java.io.StringReader;
import java.sql.*;
import java.util.*;
import org.postgresql.PGConnection;
import org.postgresql.copy.CopyManager;

public class JdbcClient {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/asofdb?user=jdbc";
        try (Connection conn = DriverManager.getConnection(url)) {
            Statement st = conn.createStatement();
            st.execute("CREATE TABLE tx (card BIGINT, amt DOUBLE PRECISION, status TEXT, ts TIMESTAMP NOT NULL) "
                + "WITH (event_time = 'ts')");
            try (PreparedStatement insert = conn.prepareStatement("INSERT INTO tx VALUES (?, ?, ?, ?)")) {
                Object[][] rows = {
                    {1L, 10.0, "ok", "2025-01-01 12:00:00"},
                    {1L, 30.0, "failed", "2025-01-01 12:10:00"},
                    {2L, 5.5, "ok", "2025-01-01 12:05:00"},
                };
                for (Object[] r : rows) {
                    insert.setLong(1, (Long) r[0]);
                    insert.setDouble(2, (Double) r[1]);
                    insert.setString(3, (String) r[2]);
                    insert.setTimestamp(4, Timestamp.valueOf((String) r[3]));
                    insert.addBatch();
                }
                int[] counts = insert.executeBatch();
                check(counts.length == 3 && counts[0] == 1, "batch counts " + Arrays.toString(counts));
            }
            CopyManager copy = conn.unwrap(PGConnection.class).getCopyAPI();
            long copied = copy.copyIn("COPY tx FROM STDIN WITH (FORMAT csv)",
                new StringReader("2,7.25,failed,2025-01-01 12:20:00\n3,,ok,2025-01-01 12:30:00\n"));
            check(copied == 2, "copied " + copied);

            // A batch with an error in the middle: the driver reports it, and nothing of the
            // batch's transaction stays when autocommit is off.
            conn.setAutoCommit(false);
            try (PreparedStatement insert = conn.prepareStatement("INSERT INTO tx VALUES (?, ?, ?, ?)")) {
                insert.setLong(1, 4); insert.setDouble(2, 1.0); insert.setString(3, "ok");
                insert.setTimestamp(4, Timestamp.valueOf("2025-01-01 12:40:00"));
                insert.addBatch();
                insert.setLong(1, 4); insert.setDouble(2, 1.0); insert.setString(3, "ok");
                insert.setNull(4, Types.TIMESTAMP);
                insert.addBatch();
                insert.executeBatch();
                throw new AssertionError("expected the batch to fail");
            } catch (BatchUpdateException e) {
                check("23502".equals(e.getSQLState()) || "23502".equals(e.getNextException().getSQLState()),
                    "batch error state " + e.getSQLState());
                conn.rollback();
            }
            conn.setAutoCommit(true);
            try (ResultSet rs = st.executeQuery("SELECT count(*), sum(amt) FROM tx")) {
                rs.next();
                check(rs.getLong(1) == 5 && rs.getDouble(2) == 52.75, "rows " + rs.getLong(1) + " " + rs.getDouble(2));
            }

            st.execute("CREATE FEATURE card_1h AS SELECT card, count(*) AS n, max(amt) AS max_amt FROM tx "
                + "GROUP BY card WINDOW SLIDING INTERVAL '1 hour'");
            try (PreparedStatement read = conn.prepareStatement("SELECT n, max_amt, ts FROM card_1h WHERE card = ?")) {
                // Reused past prepareThreshold, so the driver switches to a named server-side statement.
                for (int i = 0; i < 6; i++) {
                    read.setLong(1, 1);
                    try (ResultSet rs = read.executeQuery()) {
                        check(rs.next(), "feature row");
                        check(rs.getLong(1) == 2 && rs.getDouble(2) == 30.0, "feature values");
                        check(rs.getTimestamp(3).equals(Timestamp.valueOf("2025-01-01 12:30:00")), "feature time " + rs.getTimestamp(3));
                    }
                }
            }

            st.execute("CREATE TABLE spine (card BIGINT, t TIMESTAMP NOT NULL, label INT) WITH (event_time = 't')");
            st.execute("INSERT INTO spine VALUES (1, '2025-01-01 12:10:00', 1), (2, '2025-01-01 12:01:00', 0)");
            try (ResultSet rs = st.executeQuery("SELECT s.card, s.label, f.n, f.max_amt FROM spine s "
                    + "ASOF LEFT JOIN card_1h f ON s.card = f.card AND s.t > f.ts ORDER BY 1")) {
                check(rs.next() && rs.getLong(1) == 1 && rs.getLong(3) == 1 && rs.getDouble(4) == 10.0, "training row 1");
                check(rs.next() && rs.getLong(1) == 2 && rs.getObject(3) == null, "training row 2");
                check(!rs.next(), "training rows");
            }

            DatabaseMetaData meta = conn.getMetaData();
            Set<String> tables = new HashSet<>();
            try (ResultSet rs = meta.getTables(null, "public", "%", new String[] {"TABLE"})) {
                while (rs.next()) tables.add(rs.getString("TABLE_NAME"));
            }
            check(tables.containsAll(List.of("tx", "spine")), "tables " + tables);
            List<String> columns = new ArrayList<>();
            try (ResultSet rs = meta.getColumns(null, "public", "tx", "%")) {
                while (rs.next()) columns.add(rs.getString("COLUMN_NAME") + ":" + rs.getString("TYPE_NAME"));
            }
            check(columns.equals(List.of("card:int8", "amt:float8", "status:text", "ts:timestamp")), "columns " + columns);
            // What a BI tool's schema browser asks next (issue #22): each must answer.
            Set<String> schemas = new HashSet<>();
            try (ResultSet rs = meta.getSchemas()) {
                while (rs.next()) schemas.add(rs.getString("TABLE_SCHEM"));
            }
            check(schemas.contains("public"), "schemas " + schemas);
            try (ResultSet rs = meta.getPrimaryKeys(null, "public", "tx")) {
                check(!rs.next(), "event tables have no primary key");
            }
            try (ResultSet rs = meta.getImportedKeys(null, "public", "tx")) {
                check(!rs.next(), "event tables have no foreign keys");
            }
            try (ResultSet rs = meta.getIndexInfo(null, "public", "tx", false, true)) {
                while (rs.next()) rs.getString("INDEX_NAME");
            }
            Set<String> types = new HashSet<>();
            try (ResultSet rs = meta.getTypeInfo()) {
                while (rs.next()) types.add(rs.getString("TYPE_NAME"));
            }
            check(types.containsAll(List.of("int8", "float8", "text", "timestamp", "bool")), "types " + types);

            try {
                st.executeQuery("SELECT * FROM no_such_table");
                throw new AssertionError("expected an error");
            } catch (SQLException e) {
                check("42P01".equals(e.getSQLState()), "state " + e.getSQLState());
            }
            try (ResultSet rs = st.executeQuery("SELECT count(*) FROM tx")) {
                check(rs.next() && rs.getLong(1) == 5, "connection still works");
            }
        }
        System.out.println("jdbc client: ok");
    }
}
