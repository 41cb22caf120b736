// pgjdbc against `pg-gateway-native serve`: two connections with prepareThreshold=1 (named
// statements S_1, S_2, ... on both: they collide on a naively shared PGlite session), binary
// results, and a fetchSize cursor in a transaction.
//   java -cp postgresql.jar ServeJdbc.java <port>
import java.sql.*;

public class ServeJdbc {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/postgres?prepareThreshold=1&sslmode=disable";
        try (Connection a = DriverManager.getConnection(url, "postgres", "postgres");
             Connection b = DriverManager.getConnection(url, "postgres", "postgres")) {
            for (int i = 0; i < 10; i++) {
                try (PreparedStatement pa = a.prepareStatement("select ?::int * 2");
                     PreparedStatement pb = b.prepareStatement("select ?::text || '!'")) {
                    pa.setInt(1, i);
                    pb.setString(1, "x" + i);
                    try (ResultSet ra = pa.executeQuery(); ResultSet rb = pb.executeQuery()) {
                        ra.next();
                        rb.next();
                        if (ra.getInt(1) != i * 2) throw new AssertionError("a: " + ra.getInt(1));
                        if (!rb.getString(1).equals("x" + i + "!")) throw new AssertionError("b: " + rb.getString(1));
                    }
                }
            }
            a.setAutoCommit(false);
            try (PreparedStatement cursor = a.prepareStatement("select g from generate_series(1, 1000) g")) {
                cursor.setFetchSize(100);
                int n = 0;
                try (ResultSet rows = cursor.executeQuery()) {
                    while (rows.next()) n += rows.getInt(1);
                }
                if (n != 500500) throw new AssertionError("sum " + n);
            }
            a.commit();
        }
        System.out.println("pgjdbc ok");
    }
}
