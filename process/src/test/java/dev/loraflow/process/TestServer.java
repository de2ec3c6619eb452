package dev.loraflow.process;

import java.io.IOException;
import java.net.InetAddress;
import java.net.ServerSocket;
import java.net.Socket;

/** The child JVM of {@link ChildJvmsTest}: {@code listen PORT} serves until killed, {@code fail CODE TEXT} prints TEXT and exits. */
public final class TestServer {

    private TestServer() {}

    public static void main(String[] args) throws IOException {
        switch (args[0]) {
            case "listen" -> {
                try (ServerSocket socket = new ServerSocket(Integer.parseInt(args[1]), 50, InetAddress.getLoopbackAddress())) {
                    System.out.println("listening on " + socket.getLocalPort());
                    System.out.flush();
                    while (true) {
                        try (Socket ignored = socket.accept()) {
                            // Accepting is all a readiness check needs.
                        }
                    }
                }
            }
            case "fail" -> {
                System.out.println(args[2]);
                System.out.flush();
                System.exit(Integer.parseInt(args[1]));
            }
            default -> throw new IllegalArgumentException("listen PORT | fail CODE TEXT");
        }
    }
}
