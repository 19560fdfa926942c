"""Creates endpoint services on a moto server, for the provider's integration tests.

moto's CreateVpcEndpoint accepts any service name, but DescribeVpcEndpointServices lists only
services made with CreateVpcEndpointServiceConfiguration, which needs a network load balancer.
This script makes a provider VPC with one subnet per zone, one internal NLB and COUNT services
over it, then prints {"service_names": [...]} as JSON.

Usage: python endpoint_service.py ENDPOINT_URL COUNT
"""

import json
import sys

import boto3


def main() -> None:
    endpoint, count = sys.argv[1], int(sys.argv[2])
    if not endpoint.startswith("http://127.0.0.1:"):
        sys.exit(f"refusing endpoint {endpoint}: only a local moto server on 127.0.0.1 is allowed")
    options = dict(
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ec2 = boto3.client("ec2", **options)
    elbv2 = boto3.client("elbv2", **options)

    vpc_id = ec2.create_vpc(CidrBlock="10.250.0.0/16")["Vpc"]["VpcId"]
    subnets = [
        ec2.create_subnet(VpcId=vpc_id, CidrBlock=f"10.250.{i}.0/24", AvailabilityZone=zone)[
            "Subnet"
        ]["SubnetId"]
        for i, zone in enumerate(["us-east-1a", "us-east-1b"])
    ]
    balancer = elbv2.create_load_balancer(
        Name=f"provider-{vpc_id[-8:]}", Subnets=subnets, Type="network", Scheme="internal"
    )["LoadBalancers"][0]["LoadBalancerArn"]

    names = []
    for _ in range(count):
        configuration = ec2.create_vpc_endpoint_service_configuration(
            NetworkLoadBalancerArns=[balancer], AcceptanceRequired=False
        )["ServiceConfiguration"]
        names.append(configuration["ServiceName"])
    print(json.dumps({"service_names": names}))


if __name__ == "__main__":
    main()
