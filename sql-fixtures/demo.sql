-- pgbelay demo data: a small shop in the middle of an incident.
--
-- customers, orders and order_items carry the soft-delete column `deleted_at`, so a DELETE
-- through pgbelay becomes an UPDATE that sets it. shipments and audit_notes do not have it,
-- so a DELETE on them needs an approval. Foreign keys: order_items -> orders ON DELETE
-- CASCADE, orders -> customers NO ACTION, shipments -> orders NO ACTION.
--
-- Every value is derived from generate_series, so the data is the same on every load.

BEGIN;

CREATE TABLE customers (
    id          bigint PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    name        text NOT NULL,
    country     text NOT NULL,
    created_at  timestamptz NOT NULL,
    deleted_at  timestamptz
);

CREATE TABLE orders (
    id           bigint PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (id),
    status       text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'cancelled')),
    total_cents  bigint NOT NULL,
    placed_at    timestamptz NOT NULL,
    deleted_at   timestamptz
);
CREATE INDEX orders_customer_id ON orders (customer_id);

CREATE TABLE order_items (
    order_id     bigint NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line         int NOT NULL,
    sku          text NOT NULL,
    quantity     int NOT NULL CHECK (quantity > 0),
    price_cents  bigint NOT NULL,
    deleted_at   timestamptz,
    PRIMARY KEY (order_id, line)
);

-- No deleted_at: a DELETE here is a hard delete and needs an approval token.
CREATE TABLE shipments (
    id           bigint PRIMARY KEY,
    order_id     bigint NOT NULL REFERENCES orders (id),
    carrier      text NOT NULL,
    tracking     text NOT NULL,
    shipped_at   timestamptz NOT NULL
);

-- No deleted_at either: free-form notes written during incidents.
CREATE TABLE audit_notes (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    author   text NOT NULL,
    note     text NOT NULL,
    at       timestamptz NOT NULL DEFAULT now()
);

-- 1,000 customers across five countries.
INSERT INTO customers (id, email, name, country, created_at)
SELECT i,
       format('customer%s@example.com', i),
       format('Customer %s', i),
       (ARRAY['DE', 'FR', 'US', 'JP', 'BR'])[1 + i % 5],
       timestamptz '2024-01-01 00:00:00+00' + i * interval '7 hours'
FROM generate_series(1, 1000) AS i;

-- 5,000 orders, five per customer, with a spread of statuses.
INSERT INTO orders (id, customer_id, status, total_cents, placed_at)
SELECT i,
       1 + (i - 1) % 1000,
       (ARRAY['pending', 'paid', 'shipped', 'shipped', 'cancelled'])[1 + (i * 7) % 5],
       0,
       timestamptz '2024-06-01 00:00:00+00' + i * interval '37 minutes'
FROM generate_series(1, 5000) AS i;

-- One to three lines per order (about 10,000 rows).
INSERT INTO order_items (order_id, line, sku, quantity, price_cents)
SELECT o.id,
       l,
       format('SKU-%s', lpad(((o.id * 31 + l * 17) % 250)::text, 4, '0')),
       1 + (o.id + l) % 4,
       199 + ((o.id * 13 + l * 101) % 9800)
FROM orders AS o
CROSS JOIN LATERAL generate_series(1, 1 + o.id % 3) AS l;

UPDATE orders AS o
SET total_cents = s.total
FROM (SELECT order_id, sum(quantity * price_cents) AS total
      FROM order_items GROUP BY order_id) AS s
WHERE s.order_id = o.id;

-- A shipment for every shipped order.
INSERT INTO shipments (id, order_id, carrier, tracking, shipped_at)
SELECT row_number() OVER (ORDER BY o.id),
       o.id,
       (ARRAY['DHL', 'UPS', 'FedEx'])[1 + o.id % 3],
       format('TRK%s', lpad(o.id::text, 8, '0')),
       o.placed_at + interval '1 day'
FROM orders AS o
WHERE o.status = 'shipped';

-- A handful of customers and their orders were already soft-deleted before today.
UPDATE customers SET deleted_at = timestamptz '2025-01-15 12:00:00+00' WHERE id % 97 = 0;
UPDATE orders SET deleted_at = timestamptz '2025-01-15 12:00:00+00'
WHERE customer_id IN (SELECT id FROM customers WHERE deleted_at IS NOT NULL);
UPDATE order_items SET deleted_at = timestamptz '2025-01-15 12:00:00+00'
WHERE order_id IN (SELECT id FROM orders WHERE deleted_at IS NOT NULL);

INSERT INTO audit_notes (author, note, at) VALUES
    ('oncall', 'Duplicate orders reported for customers in BR after the 02:00 deploy.',
     timestamptz '2025-02-03 02:41:00+00'),
    ('oncall', 'Pending orders older than 30 days should be cancelled, not deleted.',
     timestamptz '2025-02-03 03:05:00+00');

COMMIT;

ANALYZE;
