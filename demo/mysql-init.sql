-- Sample ERP tables for the demo stack (run once by the mysql image on its first start).
-- orders has updated_at: it is synced incrementally; customers and products are reloaded in full.
CREATE TABLE customers (
    id         INT PRIMARY KEY,
    name       VARCHAR(100) NOT NULL,
    country    CHAR(2) NOT NULL,
    created_at DATETIME NOT NULL
) CHARACTER SET utf8mb4;

CREATE TABLE products (
    sku        VARCHAR(20) PRIMARY KEY,
    title      VARCHAR(200) NOT NULL,
    unit_price DECIMAL(10,2) NOT NULL,
    weight_kg  DOUBLE,
    active     TINYINT(1) NOT NULL DEFAULT 1
) CHARACTER SET utf8mb4;

CREATE TABLE orders (
    id          INT AUTO_INCREMENT PRIMARY KEY,
    customer_id INT NOT NULL,
    sku         VARCHAR(20) NOT NULL,
    quantity    INT NOT NULL,
    status      ENUM('new', 'paid', 'shipped', 'cancelled') NOT NULL DEFAULT 'new',
    note        TEXT,
    ordered_at  DATETIME NOT NULL,
    updated_at  TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    KEY idx_orders_updated_at (updated_at)
) CHARACTER SET utf8mb4;

INSERT INTO customers VALUES
    (1, 'Müller Maschinenbau GmbH', 'DE', '2023-01-15 09:30:00'),
    (2, 'Åkesson Verktyg AB', 'SE', '2023-03-02 14:00:00'),
    (3, 'Fonderie Lyonnaise', 'FR', '2023-06-20 08:15:00');

INSERT INTO products VALUES
    ('BRK-100', 'Brake disc 300 mm', 48.90, 6.2, 1),
    ('SPD-220', 'Spindle bearing set', 312.00, 1.35, 1),
    ('OLD-001', 'Discontinued clamp', 9.99, NULL, 0);

INSERT INTO orders (customer_id, sku, quantity, status, note, ordered_at) VALUES
    (1, 'BRK-100', 40, 'paid', 'deliver to gate 3', '2024-02-28 10:00:00'),
    (2, 'SPD-220', 2, 'new', NULL, '2024-02-29 16:45:00'),
    (3, 'BRK-100', 120, 'shipped', 'urgent: "line down"', '2024-03-01 07:20:00');
