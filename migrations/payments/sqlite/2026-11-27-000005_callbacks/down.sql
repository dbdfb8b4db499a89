DROP TABLE callback_deliveries;
DROP TABLE callback_endpoints;
DROP TABLE project_secrets;
