// pgjdbc logs in with the right password, then fails with the wrong one; prints one line each
// ("ok", or "error <SQLSTATE>"). Run as a single-file program: java -cp postgresql.jar JdbcLogin.java url user right wrong
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.SQLException;

public class JdbcLogin {
    public static void main(String[] args) {
        for (String password : new String[] {args[2], args[3]}) {
            try (Connection connection = DriverManager.getConnection(args[0], args[1], password)) {
                System.out.println("ok");
            } catch (SQLException e) {
                System.out.println("error " + e.getSQLState());
            }
        }
    }
}
